// libFuzzer entry: any bytes as a .gguf.zst container (see walk.h).
#include "walk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    gguf::fuzz::read_container(data, size);
    return 0;
}
