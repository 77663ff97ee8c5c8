// Keyword decisions on a device; see recognize_commands.h. Every step mirrors
// kws/stream/recognize.py in the same order and in double precision, so both emit the same
// events on the same inputs (tests/stream/test_recognize_commands_cc.py).
#include "recognize_commands.h"

#include <cmath>
#include <cstring>

namespace kws {

bool IsKeyword(const char* label) {
  const size_t length = std::strlen(label);
  return !(length > 0 && label[0] == '_' && label[length - 1] == '_');
}

void RecognizeCommands::PendingQueue::PushBack(const Pending& item) {
  if (size == kMaxPendingWords) PopFront();  // full: forget the oldest
  items[(head + size) % kMaxPendingWords] = item;
  ++size;
}

RecognizeStatus RecognizeCommands::Init(const RecognizeConfig& config,
                                        const char* const* labels, int num_labels) {
  const bool in_range =
      config.detection_threshold > 0.0 && config.detection_threshold < 1.0 &&
      config.release_fraction > 0.0 && config.release_fraction < 1.0 &&
      config.average_window_ms > 0.0 && config.suppression_ms >= 0.0 &&
      config.minimum_count >= 1 && config.word_gap_ms >= 0.0 && config.vad_margin_db > 0.0 &&
      config.noise_floor_rise_db_per_s > 0.0 && num_labels > 0 && num_labels <= kMaxLabels;
  if (!in_range) return RecognizeStatus::kBadConfig;
  config_ = config;
  labels_ = labels;
  num_labels_ = num_labels;
  for (int i = 0; i < num_labels_; ++i) keyword_[i] = IsKeyword(labels_[i]);
  Reset();
  return RecognizeStatus::kOk;
}

void RecognizeCommands::Reset() {
  ClearResults();
  for (int i = 0; i < num_labels_; ++i) {
    armed_[i] = true;
    credit_[i] = -1;
  }
  has_fired_ = has_time_ = has_restart_ = false;
  has_floor_ = in_speech_ = has_speech_ = false;
  words_ = 0;
  onsets_.Clear();
  cutoffs_.Clear();
  skipped_results_ = 0;
}

void RecognizeCommands::ClearResults() {
  results_head_ = results_size_ = 0;
  for (int i = 0; i < num_labels_; ++i) sum_[i] = 0.0;
}

void RecognizeCommands::TrackWords(double time_ms, double level_db) {
  if (!has_floor_) {
    floor_db_ = level_db;
    has_floor_ = true;
  } else {
    const double rise_db =
        config_.noise_floor_rise_db_per_s * (time_ms - floor_time_ms_) / 1000.0;
    const double risen = floor_db_ + rise_db;
    floor_db_ = level_db <= risen ? level_db : risen;
  }
  floor_time_ms_ = time_ms;
  if (level_db <= floor_db_ + config_.vad_margin_db) {
    in_speech_ = false;
    return;
  }
  if (!in_speech_ && (!has_speech_ || time_ms - last_speech_ms_ >= config_.word_gap_ms)) {
    onsets_.PushBack({time_ms, words_});
    if (has_speech_) {
      // The first window holding nothing from before the pause ends here.
      cutoffs_.PushBack({last_speech_ms_ + config_.input_window_ms, words_});
    }
    ++words_;
  }
  in_speech_ = true;
  has_speech_ = true;
  last_speech_ms_ = time_ms;
}

// The newest word heard for at least half an averaging window, or, when newer, the word a
// restart of the smoothing less than an averaging window ago began with.
int RecognizeCommands::WordForEvent(double time_ms) const {
  int word = -1;
  for (int i = onsets_.size - 1; i >= 0; --i) {
    const Pending& onset = onsets_.At(i);
    if (onset.time_ms <= time_ms - config_.average_window_ms / 2) {
      word = onset.word;
      break;
    }
  }
  if (has_restart_ && time_ms - restart_ms_ <= config_.average_window_ms &&
      restart_word_ > word) {
    word = restart_word_;
  }
  return word;
}

RecognizeStatus RecognizeCommands::Process(double time_ms, const float* scores,
                                           double level_db, RecognizeResult* result) {
  if (has_time_ && time_ms < last_time_ms_) return RecognizeStatus::kTimeWentBackwards;
  has_time_ = true;
  last_time_ms_ = time_ms;
  *result = RecognizeResult();
  if (std::isfinite(level_db) && config_.word_gap_ms > 0.0) TrackWords(time_ms, level_db);
  while (cutoffs_.size > 0 && cutoffs_.Front().time_ms <= time_ms) {
    const int word = cutoffs_.Front().word;
    cutoffs_.PopFront();
    bool any = false;
    for (int i = 0; i < num_labels_; ++i) {
      if (keyword_[i] && !armed_[i] && credit_[i] < word) {
        armed_[i] = true;  // the window has left its word
        any = true;
      }
    }
    if (any) {  // judge the next word on fresh windows only
      ClearResults();
      has_restart_ = true;
      restart_ms_ = time_ms;
      restart_word_ = word;
    }
  }
  for (int i = 0; i < num_labels_; ++i) {
    if (!std::isfinite(scores[i])) {
      ++skipped_results_;
      return RecognizeStatus::kOk;
    }
  }
  // Same order of floating-point operations as Python: add the new scores, then subtract the
  // results that left the window (inclusive window, as TensorFlow's).
  for (int i = 0; i < num_labels_; ++i) sum_[i] += static_cast<double>(scores[i]);
  while (results_size_ > 0 &&
         result_time_ms_[results_head_] < time_ms - config_.average_window_ms) {
    for (int i = 0; i < num_labels_; ++i) {
      sum_[i] -= static_cast<double>(result_scores_[results_head_][i]);
    }
    results_head_ = (results_head_ + 1) % kMaxResults;
    --results_size_;
  }
  if (results_size_ == kMaxResults) return RecognizeStatus::kTooManyResults;
  const int slot = (results_head_ + results_size_) % kMaxResults;
  result_time_ms_[slot] = time_ms;
  for (int i = 0; i < num_labels_; ++i) result_scores_[slot][i] = scores[i];
  ++results_size_;

  const double span_ms = time_ms - result_time_ms_[results_head_];
  if (results_size_ < config_.minimum_count || span_ms < config_.average_window_ms / 4) {
    return RecognizeStatus::kOk;
  }
  const double release_level = config_.release_fraction * config_.detection_threshold;
  int top = 0;
  double top_score = 0.0;
  for (int i = 0; i < num_labels_; ++i) {
    const double average = sum_[i] / static_cast<double>(results_size_);
    if (average < release_level) armed_[i] = true;
    if (i == 0 || average > top_score) {  // the first of equal maxima, as numpy's argmax
      top = i;
      top_score = average;
    }
  }
  result->label = top;
  result->score = top_score;
  const bool refractory_over = !has_fired_ || time_ms - last_fire_ms_ >= config_.suppression_ms;
  if (keyword_[top] && top_score > config_.detection_threshold && armed_[top] &&
      refractory_over) {
    armed_[top] = false;
    credit_[top] = WordForEvent(time_ms);
    has_fired_ = true;
    last_fire_ms_ = time_ms;
    result->is_new_command = true;
  }
  return RecognizeStatus::kOk;
}

}  // namespace kws
