// Host driver for recognize_commands.cc: replays a posterior track and prints the events, so
// tests/stream/test_recognize_commands_cc.py can compare them with the Python detector's.
//
// Build: g++ -std=c++17 -O2 deploy/tflm/recognize_commands.cc
//            deploy/tflm/recognize_commands_test.cc -o recognize_commands_test
// Input (file given as argv[1]), whitespace separated:
//   config <average_window_ms> <detection_threshold> <suppression_ms> <minimum_count>
//          <release_fraction> <word_gap_ms> <vad_margin_db> <noise_floor_rise_db_per_s>
//          <input_window_ms>
//   labels <count> <name> ...
//   step <time_ms> <level_db or nan> <score> ...      (one per inference)
// Output: "event <label> <time_ms> <score>" per event, then "skipped <count>"; exit status 1
// with "error ..." on bad input or a status other than kOk.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "recognize_commands.h"

namespace {

int Fail(const std::string& message) {
  std::printf("error %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: recognize_commands_test TRACK_FILE");
  std::ifstream in(argv[1]);
  if (!in) return Fail(std::string("cannot open ") + argv[1]);
  std::string word;
  kws::RecognizeConfig config;
  if (!(in >> word) || word != "config") return Fail("expected 'config'");
  in >> config.average_window_ms >> config.detection_threshold >> config.suppression_ms >>
      config.minimum_count >> config.release_fraction >> config.word_gap_ms >>
      config.vad_margin_db >> config.noise_floor_rise_db_per_s >> config.input_window_ms;
  int count = 0;
  if (!(in >> word) || word != "labels" || !(in >> count) || count <= 0) {
    return Fail("expected 'labels <count>'");
  }
  std::vector<std::string> names(count);
  for (auto& name : names) in >> name;
  std::vector<const char*> labels;
  for (const auto& name : names) labels.push_back(name.c_str());
  kws::RecognizeCommands recognizer;
  if (recognizer.Init(config, labels.data(), count) != kws::RecognizeStatus::kOk) {
    return Fail("bad config");
  }
  std::vector<float> scores(count);
  std::string time_text, level_text, score_text;
  while (in >> word) {
    if (word != "step") return Fail("expected 'step', got '" + word + "'");
    in >> time_text >> level_text;
    // strtod/strtof read "nan" and "inf" too (iostreams do not).
    const double time_ms = std::strtod(time_text.c_str(), nullptr);
    const double level_db = std::strtod(level_text.c_str(), nullptr);
    for (auto& score : scores) {
      in >> score_text;
      score = std::strtof(score_text.c_str(), nullptr);
    }
    if (!in) return Fail("truncated step");
    kws::RecognizeResult result;
    const kws::RecognizeStatus status =
        recognizer.Process(time_ms, scores.data(), level_db, &result);
    if (status != kws::RecognizeStatus::kOk) {
      return Fail("status " + std::to_string(static_cast<int>(status)) + " at " + time_text);
    }
    if (result.is_new_command) {
      std::printf("event %s %.17g %.17g\n", labels[result.label], time_ms, result.score);
    }
  }
  std::printf("skipped %d\n", recognizer.skipped_results());
  return 0;
}
