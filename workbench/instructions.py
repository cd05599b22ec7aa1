"""Instructions to draft rubrics for: canonical records, plain prompts or chat messages, one JSON per line.

Accepted lines:
    {"prompt_id": ..., "messages": [...], "criteria": [...]}   a canonical record (its criteria are ignored)
    {"prompt": "text"} or {"prompt_id": "p1", "prompt": "text"} a plain prompt, sent as one user message
    {"messages": [{"role": "user", "content": ...}, ...]}      chat messages, optionally with "prompt_id"
    "text"                                                     a bare JSON string
A prompt without an id gets a stable one from its text. The first problem stops the read: UserError
`FILE:LINE: what is wrong; fix`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from promedical.errors import UserError
from promedical.reward.rubric import Message
from promedical.reward.rubric_io import RecordProblems, record_from_dict

_PLACEHOLDER = [{"id": "x", "text": "x", "tier": "proficiency", "weight": 1.0}]
_KNOWN = {"prompt_id", "prompt", "messages", "criteria", "responses", "pairs", "source", "tags"}


@dataclass(frozen=True)
class Instruction:
    prompt_id: str
    messages: tuple[Message, ...]

    def text(self) -> str:
        """The user turns joined: what the drafter and the embedder see."""
        return "\n".join(m.content for m in self.messages if m.role == "user") or self.messages[-1].content


def _messages(obj: dict, where: str) -> list[dict]:
    if "prompt" in obj and "messages" in obj:
        raise UserError(f"{where}: both prompt and messages given; keep one")
    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{where}: prompt: expected a non-empty string")
        return [{"role": "user", "content": prompt}]
    if "messages" in obj:
        return obj["messages"]
    raise UserError(f"{where}: no prompt or messages; give {{\"prompt\": \"...\"}} or {{\"messages\": [...]}}")


def parse_line(obj: object, where: str) -> Instruction:
    """One decoded line as an Instruction; messages are checked by the canonical record validator."""
    if isinstance(obj, str):
        obj = {"prompt": obj}
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object or string, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        raise UserError(f"{where}: {unknown[0]}: unknown field; known fields: {', '.join(sorted(_KNOWN))}")
    messages = _messages(obj, where)
    prompt_id = obj.get("prompt_id")
    if prompt_id is None:
        prompt_id = "wb-" + hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    try:
        rec = record_from_dict({"prompt_id": prompt_id, "messages": messages, "criteria": _PLACEHOLDER})
    except RecordProblems as exc:
        raise UserError(f"{where}: {exc.problems[0]}") from None
    return Instruction(prompt_id=rec.prompt_id, messages=rec.messages)


def read_instructions(path: str | Path) -> list[Instruction]:
    """Every instruction of a JSONL file, or UserError naming the first bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc}); give a UTF-8 JSONL file") from None
    out: list[Instruction] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); fix the JSON") from None
        inst = parse_line(obj, where)
        if inst.prompt_id in seen:
            raise UserError(f"{where}: prompt_id {inst.prompt_id!r} already used on line {seen[inst.prompt_id]}")
        seen[inst.prompt_id] = lineno
        out.append(inst)
    if not out:
        raise UserError(f"{path}: no instructions; give one JSON object per line")
    return out
