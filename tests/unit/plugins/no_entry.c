/* A shared library that is no kws plugin: it lacks kws_plugin_entry. */
__attribute__((visibility("default"))) int something_else(void) { return 42; }
