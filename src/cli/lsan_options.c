/* LeakSanitizer's defaults for lowbit's programs (the sanitizer runtime asks the program for
 * them at start-up, so they live in each program, not in a library or in lowbit-extras.so;
 * tests/CMakeLists.txt builds this file into every test program too). Other builds never
 * call them.
 *
 * fontconfig and cairo keep their font caches for the life of the process by design (tearing
 * them down with FcFini or cairo_debug_reset_static_data asserts when a face is still
 * referenced), so the report code's font libraries are not counted; the leak check stays
 * meaningful for everything else. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\nleak:libpango\nleak:libcairo.so\nleak:libharfbuzz.so\nleak:libglib-2.0.so\n"
           "leak:libgobject-2.0.so\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}
