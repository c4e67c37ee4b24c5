// Package safetensors reads and writes tensors in the Hugging Face
// safetensors format, single files and sharded checkpoints.
//
// A safetensors file is an unsigned 64-bit little-endian header length N,
// N bytes of JSON header (padded with spaces), and the tensor data. The
// header maps each tensor name to its dtype, shape and the [begin, end) byte
// range of its data, counted from the start of the data section; an optional
// "__metadata__" entry maps strings to strings.
//
// [Open] validates the whole header before it returns, so every later read of
// a tensor stays within the file. Tensors are read on demand with ReadAt;
// a file is never read into memory as a whole. Floating-point tensors are
// converted to float32 with [File.Float32], bit-exactly as PyTorch does.
//
// [Write] and [WriteCheckpoint] replace files atomically: readers see either
// the old file or the complete new one. [OpenCheckpoint] opens a folder the
// way Hugging Face loaders do, checking a sharded checkpoint's index against
// its shards.
//
// Conversions between float32 and F16 or BF16 ([F16ToF32], [F32ToF16],
// [BF16ToF32], [F32ToBF16]) round to nearest even and match PyTorch bit for
// bit.
package safetensors
