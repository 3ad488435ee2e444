// The fuzz build compiles no stack (CACHEDATTN_NO_EXTERN_STACKS): an empty library.
namespace cachedattn::detail {
int fuzz_build_has_no_compiled_stacks = 0;
}  // namespace cachedattn::detail
