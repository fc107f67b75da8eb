#include "server/web_page.h"

namespace flashmem::server {

std::string_view web_page_html() {
  static constexpr std::string_view kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>flashmem serve</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
  #chat { flex: 2; display: flex; flex-direction: column; padding: 1em; }
  #log { flex: 1; overflow-y: auto; border: 1px solid #ccc; padding: 0.5em; white-space: pre-wrap; }
  .user { color: #124; margin-top: 0.5em; } .assistant { color: #241; } .error { color: #a00; }
  #form { display: flex; gap: 0.5em; margin-top: 0.5em; }
  #prompt { flex: 1; height: 4em; }
  #memory { flex: 1; padding: 1em; border-left: 1px solid #ccc; background: #f7f7f7; }
  td { padding: 0.15em 0.5em; } td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<div id="chat">
  <div id="log"></div>
  <div id="form">
    <textarea id="prompt" placeholder="Message"></textarea>
    <div>
      <button id="send">Send</button><br>
      <label>max tokens <input id="max" type="number" value="64" min="1" style="width: 5em"></label><br>
      <label>temperature <input id="temperature" type="number" value="1" min="0" step="0.1" style="width: 5em"></label><br>
      <label>API key <input id="key" type="password" style="width: 8em"></label><br>
      <span id="status"></span>
    </div>
  </div>
</div>
<div id="memory">
  <h3 id="model">flashmem serve</h3>
  <p id="prompts"></p>
  <h4>This conversation's last answer</h4>
  <table id="conversation">
    <tr><td>policy</td><td id="conv-policy">-</td></tr>
    <tr><td>KV resident at the end</td><td id="conv-resident">-</td></tr>
    <tr><td>KV history (full attention would keep)</td><td id="conv-history">-</td></tr>
    <tr><td>resident / history</td><td id="conv-ratio">-</td></tr>
    <tr><td>KV reserved against the budget</td><td id="conv-reserved">-</td></tr>
    <tr><td>pages recalled from the slow tier</td><td id="conv-recalled">-</td></tr>
  </table>
  <h4>Server, live</h4>
  <table id="figures"></table>
</div>
<script>
"use strict";
const messages = [];
const log = document.getElementById("log");

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = document.getElementById("key").value;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function line(cls, text) {
  const div = document.createElement("div");
  div.className = cls;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

// Streams the reply of the conversation so far into the log (server-sent events).
async function send() {
  const text = document.getElementById("prompt").value;
  if (!text) return;
  document.getElementById("prompt").value = "";
  messages.push({ role: "user", content: text });
  line("user", "you: " + text);
  const out = line("assistant", "");
  const status = document.getElementById("status");
  status.textContent = "answering...";
  const body = { messages, stream: true, max_tokens: Number(document.getElementById("max").value),
                 temperature: Number(document.getElementById("temperature").value) };
  const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!response.ok) {
    const error = await response.json();
    out.className = "error";
    out.textContent = response.status + ": " + error.error.message;
    messages.pop();
    status.textContent = "error";
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "", reply = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) { out.className = "error"; out.textContent = chunk.error.message; continue; }
      for (const choice of chunk.choices) reply += choice.delta.content ?? "";
      if (chunk.kv_memory) showConversation(chunk.kv_memory);
      out.textContent = reply;
    }
  }
  messages.push({ role: "assistant", content: reply });
  status.textContent = out.className === "error" ? "error" : "answered";
}

// The request's own KV figures, sent with its last chunk (the server's "kv_memory" field).
function showConversation(m) {
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  set("conv-policy", m.policy);
  set("conv-resident", mb(m.kv_resident_bytes));
  set("conv-history", mb(m.kv_history_bytes));
  set("conv-ratio", m.kv_history_bytes > 0 ? (100 * m.kv_resident_bytes / m.kv_history_bytes).toFixed(1) + " %" : "-");
  set("conv-reserved", mb(m.kv_reserved_bytes));
  set("conv-recalled", m.pages_recalled + " (" + mb(m.recall_bytes) + ")");
}

// "name{labels} value" lines of the Prometheus text, unlabelled ones only.
function parseMetrics(text) {
  const values = {};
  for (const row of text.split("\n")) {
    const m = row.match(/^([a-z_]+) (\S+)$/);
    if (m) values[m[1]] = Number(m[2]);
  }
  return values;
}

function mb(bytes) { return (bytes / 1048576).toFixed(2) + " MiB"; }

async function refresh() {
  try {
    const health = await (await fetch("/health")).json();
    document.getElementById("model").textContent = "model: " + health.model;
    document.getElementById("prompts").textContent = "chat prompts: " + health.chat_prompt +
      "; KV policy: " + health.kv.policy + (health.kv.resident_fraction !== null ?
        " (resident fraction " + health.kv.resident_fraction + ")" : "");
    const response = await fetch("/metrics", { headers: headers() });
    if (!response.ok) return;
    const v = parseMetrics(await response.text());
    const history = v.flashmem_kv_history_bytes, resident = v.flashmem_kv_resident_bytes;
    const rows = [
      ["requests running", v.flashmem_active_sequences],
      ["requests waiting", v.flashmem_queue_length],
      ["KV history (full attention would keep)", mb(history)],
      ["KV resident now", mb(resident)],
      ["resident / history", history > 0 ? (100 * resident / history).toFixed(1) + " %" : "-"],
      ["KV reserved / budget", mb(v.flashmem_kv_reserved_bytes) + " / " +
        (v.flashmem_kv_budget_bytes > 0 ? mb(v.flashmem_kv_budget_bytes) : "none")],
      ["recalled from the slow tier", mb(v.flashmem_recall_bytes_total)],
      ["recall misses", v.flashmem_recall_misses_total],
      ["slow tier in RAM", mb(v.flashmem_slow_tier_ram_bytes)],
      ["weights", mb(v.flashmem_weights_bytes)],
      ["process RSS", mb(v.flashmem_process_resident_bytes)],
      ["tokens generated", v.flashmem_completion_tokens_total],
    ];
    const table = document.getElementById("figures");
    table.replaceChildren(...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      for (const cell of [name, value]) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      return tr;
    }));
  } catch (e) {
    document.getElementById("prompts").textContent = "server unreachable: " + e;
  }
}

document.getElementById("send").addEventListener("click", send);
document.getElementById("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
refresh();
setInterval(refresh, 1000);
// /#message=TEXT[&max_tokens=N][&temperature=T]: fills the form and presses Send once the page
// has loaded (a link that starts a conversation; the headless-browser test drives the page so).
// A fragment, not a query: it never goes to the server, so a long prompt fits.
const query = new URLSearchParams(location.hash.slice(1));
for (const [param, id] of [["max_tokens", "max"], ["temperature", "temperature"]])
  if (query.has(param)) document.getElementById(id).value = query.get(param);
if (query.has("message")) {
  document.getElementById("prompt").value = query.get("message");
  document.getElementById("send").click();
}
</script>
</body>
</html>
)PAGE";
  return kPage;
}

}  // namespace flashmem::server
