#ifndef CAEGIS_CRC32C_H
#define CAEGIS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 if this CPU has a CRC-32C instruction (x86-64 SSE4.2, or the ARMv8 CRC extension)
/// that `aegis_crc32c_update_hardware` uses; 0 otherwise (do not call it then).
int aegis_crc32c_hardware_available(void);

/// Continues a running, pre-inverted CRC-32C (Castagnoli) over `count` bytes at `bytes`
/// with the CPU's CRC-32C instruction. Same result as the table-driven Swift version.
uint32_t aegis_crc32c_update_hardware(uint32_t crc, const void *bytes, size_t count);

#endif
