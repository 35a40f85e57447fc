// libFuzzer entry: a type byte and tensor data for the data checks (see walk.h).
#include "walk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    gguf::fuzz::check_and_dequantize(data, size);
    return 0;
}
