#!/usr/bin/env python3
"""Renders chat templates with Jinja2 itself, in the environment Hugging Face's
apply_chat_template uses (transformers' _compile_jinja_template): an ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks and the loopcontrols extension; tojson as json.dumps with
ensure_ascii=False; raise_exception and strftime_now as globals.

Usage: jinja_reference.py JOB.json OUT.json
JOB: {"template": str, "bos_token": str, "eos_token": str,
      "cases": [{"messages": [...], "add_generation_prompt": bool, "extra": {...}}]}
OUT: {"results": [{"ok": true, "text": str} | {"ok": false, "error": str}]}, one per case.
Used by tests/golden/test_chat_templates.cpp (Debian package python3-jinja2).
"""
import json
import sys
from datetime import datetime

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    template = env.from_string(job["template"])
    results = []
    for case in job["cases"]:
        variables = dict(case.get("extra") or {})
        variables.update(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                         bos_token=job["bos_token"], eos_token=job["eos_token"])
        try:
            results.append({"ok": True, "text": template.render(**variables)})
        except Exception as e:  # the template's own errors and UndefinedError alike
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"results": results}, f)


if __name__ == "__main__":
    main()
