/* kws serve plugins: a small, versioned C ABI (docs/PLUGINS.md).
 *
 * A plugin is a shared library that exports one function,
 *
 *   const struct kws_plugin* kws_plugin_entry(uint32_t host_abi_version);
 *
 * which kws serve calls once after loading it (`--plugin FILE.so`). The
 * plugin answers with a description whose abi_version must equal the
 * KWS_PLUGIN_ABI_VERSION kws was built with, or kws refuses to start: a
 * changed layout of the structs below always comes with a new version.
 *
 * transform() is then called for every message in either direction:
 *   KWS_INCOMING  a message a WebSocket client produces, before it goes to
 *                 Kafka (topic is the name the client used);
 *   KWS_OUTGOING  a message read from Kafka, before it is sent to clients;
 *                 called once per message read, and every client shares the
 *                 result (topic is the name clients see, read-only here).
 * It may change the message through `edit` and returns KWS_KEEP (send it,
 * with the changes) or KWS_DROP. Any other return value is a failure: kws
 * refuses an incoming message and drops an outgoing one, and logs it.
 *
 * transform() may be called from several threads at once: keep no unguarded
 * state. Everything in `message` is valid only during the call; the edit
 * functions copy what they are given. Bytes are not NUL-terminated.
 */
#ifndef KWS_PLUGIN_H
#define KWS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_PLUGIN_ABI_VERSION 1u

/* Bytes that may be null: data == NULL is a null key, value or header value;
 * data != NULL with size 0 is empty. */
typedef struct kws_bytes {
  const char* data;
  size_t size;
} kws_bytes;

typedef struct kws_header {
  kws_bytes name;
  kws_bytes value;
} kws_header;

typedef enum kws_direction { KWS_INCOMING = 0, KWS_OUTGOING = 1 } kws_direction;

typedef struct kws_message {
  kws_bytes topic;
  kws_bytes key;
  kws_bytes value;
  const kws_header* headers;
  size_t header_count;
  int32_t partition;    /* -1: not chosen (incoming without a partition) */
  int64_t offset;       /* -1 for incoming messages */
  int64_t timestamp_ms; /* -1 or 0: none */
} kws_message;

/* The changes a transform makes; each function returns 0 when done, -1 when
 * refused (set_topic on an outgoing message, an empty topic or header name).
 * Unchanged parts stay as they were. set_key/set_value with data == NULL make
 * it null. clear_headers drops every header; add_header appends one. */
typedef struct kws_edit kws_edit;
struct kws_edit {
  int (*set_topic)(kws_edit* edit, const char* data, size_t size);
  int (*set_key)(kws_edit* edit, const char* data, size_t size);
  int (*set_value)(kws_edit* edit, const char* data, size_t size);
  int (*clear_headers)(kws_edit* edit);
  int (*add_header)(kws_edit* edit, const char* name, size_t name_size, const char* value, size_t value_size);
  void* host; /* kws's own; do not touch */
};

enum { KWS_KEEP = 0, KWS_DROP = 1 };

typedef struct kws_plugin {
  uint32_t abi_version; /* KWS_PLUGIN_ABI_VERSION */
  const char* name;     /* for kws's log lines */
  int (*transform)(kws_direction direction, const kws_message* message, kws_edit* edit);
} kws_plugin;

typedef const kws_plugin* (*kws_plugin_entry_fn)(uint32_t host_abi_version);
#define KWS_PLUGIN_ENTRY_SYMBOL "kws_plugin_entry"

#ifdef __cplusplus
}
#endif

#endif /* KWS_PLUGIN_H */
