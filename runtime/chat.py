"""One call to an OpenAI-compatible chat endpoint (`/chat/completions`): the LLM judge and the rubric
drafter both speak it. Errors (urllib's HTTPError/URLError, timeouts, a malformed payload) reach the
caller, which decides what a failure counts as."""
from __future__ import annotations

import json
import urllib.request
from typing import Any


def chat_completion(url: str, model: str, prompt: str, *, api_key: str = "", temperature: float = 0.0,
                    max_tokens: int = 256, timeout_s: float = 60.0) -> str:
    """The reply's text to one user message `prompt` ("" when the endpoint returns null content)."""
    body = {"model": model, "temperature": temperature, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}]}
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
        payload: Any = json.loads(reply.read().decode("utf-8"))
    return str(payload["choices"][0]["message"]["content"] or "")
