// A plain page until the full demo page lands (see core/ws/demo_page.hpp).
#include "core/ws/demo_page.hpp"

namespace kws {
const std::string_view kDemoPageHtml = R"HTML(<!doctype html>
<meta charset="utf-8"><title>kws serve</title>
<h1>kws serve</h1>
<p>WebSocket endpoint: <code>/v2/broker/?topics=TOPIC</code> (subprotocols kafka-text, kafka-binary).</p>
)HTML";
}  // namespace kws
