// Keyword decisions on a device: the same rule as kws.stream.recognize.RecognizeCommands.
//
// Feed it, every inference stride, the time of the analysed window's end, the model's class
// probabilities and the loudest frame level (dBFS) since the previous call; it reports when a
// keyword fires. The rule (deploy/tflm/README.md "Keyword decisions"):
//   1. smoothing: average the probabilities of the windows that ended within the last
//      average_window_ms; no decision with fewer than minimum_count of them or when they span
//      less than a quarter of that window;
//   2. firing: a keyword fires when it tops the smoothed probabilities above
//      detection_threshold, is armed, and suppression_ms have passed since the last event;
//      labels named _like_this_ (silence, unknown) never fire;
//   3. hysteresis: a keyword disarms when it fires and re-arms when its smoothed score falls
//      below release_fraction * detection_threshold, or once the window has left the word it
//      fired on (words come from the frame levels: speech after a pause of word_gap_ms or more
//      starts a new word).
// tests/stream/test_recognize_commands_cc.py builds this file with g++ and checks it emits
// exactly the events of the Python detector on the same tracks. No TFLM dependency, no heap.
#ifndef KWS_RECOGNIZE_COMMANDS_H_
#define KWS_RECOGNIZE_COMMANDS_H_

#include <cstdint>

// Capacities (override with -D): labels of the model; posteriors in one averaging window
// (average_window_ms / stride_ms + 1: 26 for 500 ms at 20 ms).
#ifndef KWS_RECOGNIZE_MAX_LABELS
#define KWS_RECOGNIZE_MAX_LABELS 36
#endif
#ifndef KWS_RECOGNIZE_MAX_RESULTS
#define KWS_RECOGNIZE_MAX_RESULTS 32
#endif

namespace kws {

// Defaults equal kws.config.StreamConfig's (a test compares them).
struct RecognizeConfig {
  double average_window_ms = 500.0;
  double detection_threshold = 0.7;
  double suppression_ms = 200.0;
  int minimum_count = 4;
  double release_fraction = 0.5;
  double word_gap_ms = 150.0;  // 0: no word segmentation
  double vad_margin_db = 6.0;
  double noise_floor_rise_db_per_s = 5.0;
  double input_window_ms = 1000.0;  // audio span of one model window
};

enum class RecognizeStatus {
  kOk = 0,
  kBadConfig,          // a value out of range or too many labels
  kTimeWentBackwards,  // time_ms smaller than at the previous call
  kTooManyResults,     // raise KWS_RECOGNIZE_MAX_RESULTS (window / stride + 1)
};

struct RecognizeResult {
  int label = -1;         // top label of the smoothed scores (-1 while undecided)
  double score = 0.0;     // its smoothed score (0 while undecided)
  bool is_new_command = false;  // this call fires `label` (always a keyword)
};

class RecognizeCommands {
 public:
  static constexpr int kMaxLabels = KWS_RECOGNIZE_MAX_LABELS;
  static constexpr int kMaxResults = KWS_RECOGNIZE_MAX_RESULTS;
  static constexpr int kMaxPendingWords = 8;  // as kws.stream.recognize.MAX_PENDING_WORDS

  // `labels` must outlive this object; their names decide which are keywords.
  RecognizeStatus Init(const RecognizeConfig& config, const char* const* labels,
                       int num_labels);
  void Reset();

  // scores: num_labels probabilities of the window ending at time_ms; a call with a NaN/inf
  // score is skipped (counted in skipped_results()). level_db: loudest frame level since the
  // previous call, or NaN when unknown.
  RecognizeStatus Process(double time_ms, const float* scores, double level_db,
                          RecognizeResult* result);

  int skipped_results() const { return skipped_results_; }

 private:
  struct Pending {
    double time_ms;
    int word;
  };
  // A fixed-capacity FIFO that drops its oldest entry when full (like deque(maxlen=N)).
  struct PendingQueue {
    Pending items[kMaxPendingWords];
    int head = 0;
    int size = 0;
    void Clear() { head = size = 0; }
    const Pending& Front() const { return items[head]; }
    const Pending& At(int i) const { return items[(head + i) % kMaxPendingWords]; }
    void PopFront() {
      head = (head + 1) % kMaxPendingWords;
      --size;
    }
    void PushBack(const Pending& item);
  };

  void TrackWords(double time_ms, double level_db);
  int WordForEvent(double time_ms) const;
  void ClearResults();

  RecognizeConfig config_;
  int num_labels_ = 0;
  const char* const* labels_ = nullptr;
  bool keyword_[kMaxLabels] = {};

  // Smoothing: a ring of (time, scores) and the running sum of the scores.
  double result_time_ms_[kMaxResults] = {};
  float result_scores_[kMaxResults][kMaxLabels] = {};
  int results_head_ = 0;
  int results_size_ = 0;
  double sum_[kMaxLabels] = {};

  bool armed_[kMaxLabels] = {};
  int credit_[kMaxLabels] = {};  // word each keyword last fired on (-1: none)
  bool has_fired_ = false;
  double last_fire_ms_ = 0.0;
  bool has_time_ = false;
  double last_time_ms_ = 0.0;
  bool has_restart_ = false;
  double restart_ms_ = 0.0;
  int restart_word_ = 0;

  // Word segmentation (voice activity on frame levels).
  bool has_floor_ = false;
  double floor_db_ = 0.0;
  double floor_time_ms_ = 0.0;
  bool in_speech_ = false;
  bool has_speech_ = false;
  double last_speech_ms_ = 0.0;
  int words_ = 0;
  PendingQueue onsets_;   // (onset time, word)
  PendingQueue cutoffs_;  // (time from which the window holds nothing before the word's pause)

  int skipped_results_ = 0;
};

// True unless the name looks like _silence_ / _unknown_ (as kws.stream.recognize.is_keyword).
bool IsKeyword(const char* label);

}  // namespace kws

#endif  // KWS_RECOGNIZE_COMMANDS_H_
