/* The example kws serve plugin (docs/PLUGINS.md): shows every kind of
 * change the ABI allows, in both directions.
 *
 *   incoming (a client produces):  the value in upper case (ASCII), topic
 *     "rename-me" written to "renamed", a header x-example: incoming; key
 *     "drop" dropped.
 *   outgoing (Kafka to clients):   every "secret" in the value redacted to
 *     "******", a header x-example: outgoing; key "drop-out" dropped.
 *   either way, key "fail" makes it return an error code, which kws must
 *   survive (the message is refused or dropped, and logged).
 *
 * Build: cc -shared -fPIC -I/usr/local/include -o example.so example.c
 */
#include <kws/plugin.h>
#include <stdlib.h>
#include <string.h>

static int key_is(const kws_message* m, const char* word) {
  size_t n = strlen(word);
  return m->key.data && m->key.size == n && memcmp(m->key.data, word, n) == 0;
}

static int incoming(const kws_message* m, kws_edit* edit) {
  if (key_is(m, "drop")) return KWS_DROP;
  if (m->topic.size == 9 && memcmp(m->topic.data, "rename-me", 9) == 0) {
    if (edit->set_topic(edit, "renamed", 7) != 0) return -1;
  }
  if (m->value.data) {
    char* upper = malloc(m->value.size ? m->value.size : 1);
    if (!upper) return -1;
    for (size_t i = 0; i < m->value.size; ++i) {
      char c = m->value.data[i];
      upper[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    edit->set_value(edit, upper, m->value.size);
    free(upper);
  }
  return edit->add_header(edit, "x-example", 9, "incoming", 8) == 0 ? KWS_KEEP : -1;
}

static int outgoing(const kws_message* m, kws_edit* edit) {
  if (key_is(m, "drop-out")) return KWS_DROP;
  if (m->value.data) {
    char* copy = malloc(m->value.size ? m->value.size : 1);
    if (!copy) return -1;
    memcpy(copy, m->value.data, m->value.size);
    int changed = 0;
    for (size_t i = 0; i + 6 <= m->value.size; ++i) {
      if (memcmp(copy + i, "secret", 6) == 0) {
        memset(copy + i, '*', 6);
        changed = 1;
        i += 5;
      }
    }
    if (changed) edit->set_value(edit, copy, m->value.size);
    free(copy);
  }
  return edit->add_header(edit, "x-example", 9, "outgoing", 8) == 0 ? KWS_KEEP : -1;
}

static int transform(kws_direction direction, const kws_message* m, kws_edit* edit) {
  if (key_is(m, "fail")) return 7;
  return direction == KWS_INCOMING ? incoming(m, edit) : outgoing(m, edit);
}

static const kws_plugin example = {KWS_PLUGIN_ABI_VERSION, "example", transform};

__attribute__((visibility("default"))) const kws_plugin* kws_plugin_entry(uint32_t host_abi_version) {
  /* A host speaking another version would misread the struct: say nothing. */
  return host_abi_version == KWS_PLUGIN_ABI_VERSION ? &example : NULL;
}
