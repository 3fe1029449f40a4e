// Render messages as the Home Assistant frontend does: new IntlMessageFormat(text, language)
// with the tags syntax on, then format(values). Reads {"modules": DIR, "messages": {key:
// {"text": ..., "values": {...}}}} on stdin; prints {key: {"text": ...} or {"error": ...}}.
"use strict";
const path = require("node:path");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const request = JSON.parse(input);
  const { IntlMessageFormat } = require(path.join(request.modules, "intl-messageformat"));
  const out = {};
  for (const [key, { text, values }] of Object.entries(request.messages)) {
    try {
      const rendered = new IntlMessageFormat(text, "en").format(values);
      out[key] =
        typeof rendered === "string"
          ? { text: rendered }
          : { error: `renders to rich parts, not text: ${JSON.stringify(rendered)}` };
    } catch (err) {
      out[key] = { error: String(err && err.message ? err.message : err) };
    }
  }
  process.stdout.write(JSON.stringify(out));
});
