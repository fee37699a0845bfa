"""A tiny OpenAI-compatible chat server with canned replies, for trying generative answers without a model.

    .venv/bin/python scripts/demo_openai_server.py --port 8765 \\
        --reply en 'Microsoft said that 4 accounts were compromised [{4 حسابات}]. The hackers stole 350 passwords [{!4 حسابات}].' \\
        --reply ar 'أوضحت مايكروسوفت أنه تم اختراق ٤ حسابات [{4 حسابات}].'
    assistant ask --backend openai:demo --base-url http://127.0.0.1:8765/v1 "How many accounts were compromised?"

A reply is chosen by the language of the question (the last line starting with "Question:" / "السؤال:" in the
prompt). In a reply, ``{NEEDLE}`` becomes the number of the first passage whose text contains NEEDLE and
``{!NEEDLE}`` the first passage that does not (to demonstrate a wrong citation being caught). ``"stream": true``
requests get Server-Sent Events, a few words per event; others one JSON completion. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASSAGE = re.compile(r'<passage id="(\d+)"[^>]*>\n?(.*?)\n?</passage>', re.DOTALL)


def render(template: str, prompt: str) -> str:
    passages = [(int(n), text) for n, text in PASSAGE.findall(prompt)]

    def pick(m: re.Match) -> str:
        needle = m.group(1)
        negate = needle.startswith("!")
        needle = needle[1:] if negate else needle
        for n, text in passages:
            if (needle in text) != negate:
                return str(n)
        return "1"

    return re.sub(r"\{([^{}]+)\}", pick, template)


def make_handler(replies: dict[str, str], delay: float):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            pass

        def do_POST(self):  # noqa: N802
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self.send_error(404, "unknown path")
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            arabic = "\nالسؤال:" in prompt
            template = replies.get("ar" if arabic else "en") or next(iter(replies.values()))
            text = render(template, prompt)
            model = body.get("model", "demo")
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = re.findall(r"\S+\s*", text)
                for i in range(0, len(words), 3):
                    chunk = {"id": "demo", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": {"content": "".join(words[i:i + 3])},
                                          "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(delay)
                end = {"id": "demo", "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                return
            out = json.dumps({"id": "demo", "object": "chat.completion", "created": 0, "model": model,
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}},
                             ensure_ascii=False).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--reply", nargs=2, action="append", metavar=("LANG", "TEXT"), default=[],
                    help="canned reply for questions in LANG (en or ar)")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds between streamed events")
    args = ap.parse_args()
    replies = dict(args.reply) or {"en": "The documents do not contain an answer to this question."}
    server = ThreadingHTTPServer((args.host, args.port), make_handler(replies, args.delay))
    print(f"canned OpenAI-compatible server on http://{args.host}:{args.port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
