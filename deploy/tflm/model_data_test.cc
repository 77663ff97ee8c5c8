// Host test for the generated TFLite Micro C array (compiled by tests/test_export.py with g++).
//
// Links against the generated model_data.cc and writes the array's bytes to the file named on
// the command line, so the test can compare them with the .tflite they came from. It also checks
// the 16-byte alignment that TFLite Micro relies on to read the flatbuffer in place.
#include <cstdint>
#include <cstdio>

#include "model_data.h"

#ifndef KWS_MODEL_DATA
#error "compile with -DKWS_MODEL_DATA=g_<name>_model_data"
#endif
#define KWS_CONCAT_(a, b) a##b
#define KWS_CONCAT(a, b) KWS_CONCAT_(a, b)

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_FILE\n", argv[0]);
    return 2;
  }
  const unsigned char* data = KWS_MODEL_DATA;
  const unsigned int size = KWS_CONCAT(KWS_MODEL_DATA, _size);
  if (reinterpret_cast<std::uintptr_t>(data) % 16 != 0) {
    std::fprintf(stderr, "model data is not 16-byte aligned\n");
    return 3;
  }
  std::FILE* out = std::fopen(argv[1], "wb");
  if (out == nullptr) return 4;
  const std::size_t written = std::fwrite(data, 1, size, out);
  std::fclose(out);
  return written == size ? 0 : 5;
}
