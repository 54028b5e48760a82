/* A plugin built for another ABI version: kws must refuse to load it. */
#include <kws/plugin.h>

static int transform(kws_direction direction, const kws_message* message, kws_edit* edit) {
  (void)direction;
  (void)message;
  (void)edit;
  return KWS_KEEP;
}

static const kws_plugin future = {KWS_PLUGIN_ABI_VERSION + 98u, "future", transform};

__attribute__((visibility("default"))) const kws_plugin* kws_plugin_entry(uint32_t host_abi_version) {
  (void)host_abi_version;
  return &future;
}
