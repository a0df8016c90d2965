/* rt_dtype.h - the element types attnc knows, shared by the compiler, the
 * runtime and generated libraries.  One X-macro generates the enum, the
 * names, the sizes and the safetensors / numpy spellings. */
#ifndef RT_DTYPE_H
#define RT_DTYPE_H
#include <stddef.h>

/*        enum  name    size  safetensors  numpy descr */
#define RT_DTYPES(X)                     \
  X(F32,  "f32",  4, "F32",  "<f4")      \
  X(F16,  "f16",  2, "F16",  "<f2")      \
  X(BF16, "bf16", 2, "BF16", NULL)       \
  X(I32,  "i32",  4, "I32",  "<i4")      \
  X(BOOL, "bool", 1, "BOOL", "|b1")      \
  X(F64,  "f64",  8, "F64",  "<f8")      \
  X(I64,  "i64",  8, "I64",  "<i8")

typedef enum {
#define X(e, n, s, st, np) RT_##e,
  RT_DTYPES(X)
#undef X
  RT_NDTYPE
} rt_dtype;

/* Name as written in .attn and IR text ("f32"), or NULL if out of range. */
const char *rt_dtype_name(rt_dtype t);
/* Size of one element in bytes, 0 if out of range. */
size_t rt_dtype_size(rt_dtype t);
/* Parse a name as written in .attn; returns -1 if unknown. */
int rt_dtype_from_name(const char *s);
/* Safetensors dtype string ("F32") <-> rt_dtype; -1 if unknown. */
int rt_dtype_from_safetensors(const char *s, size_t len);
const char *rt_dtype_safetensors(rt_dtype t);

#define RT_MAX_RANK 8
#endif
