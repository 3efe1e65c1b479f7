// Compile an MJML file with the reference compiler (node `mjml`) at validationLevel "strict", the way
// MJML's own tools do, and report as one JSON line: {"errors": [...], "html": "..."}. Exit 1 when the
// compiler throws or finds anything to complain about. Used by tests/test_mjml_reference.py.
"use strict";
const fs = require("fs");
const mjml2html = require("mjml");

(async () => {
  const source = fs.readFileSync(process.argv[2], "utf8");
  try {
    const out = await mjml2html(source, { validationLevel: "strict", filePath: process.argv[2] });
    const errors = out.errors.map((e) => e.formattedMessage || e.message);
    process.stdout.write(JSON.stringify({ errors, html: out.html }) + "\n");
    process.exitCode = errors.length ? 1 : 0;
  } catch (error) {
    process.stdout.write(JSON.stringify({ errors: [String(error.message || error)], html: "" }) + "\n");
    process.exitCode = 1;
  }
})();
