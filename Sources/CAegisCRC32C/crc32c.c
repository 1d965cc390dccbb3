// CRC-32C with the CPU's instruction: x86-64 SSE4.2 `crc32`, or ARMv8 `crc32c*`.
// Compiled for the baseline CPU; the instruction is used only in functions marked with a
// target attribute, and only after the runtime check says the CPU has it.
#include "CAegisCRC32C.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>

int aegis_crc32c_hardware_available(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t aegis_crc32c_update_hardware(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t c = crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // unaligned load
        c = _mm_crc32_u64(c, word);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (count > 0) {
        c32 = _mm_crc32_u8(c32, *p++);
        count--;
    }
    return c32;
}

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int aegis_crc32c_hardware_available(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }

__attribute__((target("crc")))
uint32_t aegis_crc32c_update_hardware(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        crc = __builtin_aarch64_crc32cx(crc, word);
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = __builtin_aarch64_crc32cb(crc, *p++);
        count--;
    }
    return crc;
}

#else
int aegis_crc32c_hardware_available(void) { return 0; }
uint32_t aegis_crc32c_update_hardware(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}
#endif
