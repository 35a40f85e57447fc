// libFuzzer entry: any bytes as a GGUF file (see walk.h).
#include "walk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    gguf::fuzz::open_and_walk(data, size);
    return 0;
}
