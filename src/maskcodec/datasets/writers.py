"""Conversation records in the formats MLLM trainers read (one JSON object per line).

``"llava"`` (LLaVA, and Text4Seg's LLaVA path)::

    {"id": ..., "image": "coco/x.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nQUESTION"},
                       {"from": "gpt", "value": "ANSWER"}]}

``"sharegpt"`` (ShareGPT messages with an image list: LLaMA-Factory, ms-swift 2+)::

    {"id": ..., "messages": [{"role": "user", "content": "<image>QUESTION"},
                             {"role": "assistant", "content": "ANSWER"}],
     "images": ["coco/x.jpg"]}

``"ms-swift"`` (ms-swift 3 ``messages`` + ``images``: the same shape as
``"sharegpt"``, which ``swift sft --dataset out.jsonl`` reads as it is).

``"swift"`` (ms-swift 1/2 query/response, Qwen-VL style, Text4Seg's ms-swift path)::

    {"id": ..., "query": "<img>coco/x.jpg</img>QUESTION", "response": "ANSWER"}

``"hf-messages"`` (Hugging Face chat templates with content parts: Qwen2-VL,
InternVL, LLaVA-OneVision processors)::

    {"id": ..., "messages": [
        {"role": "user", "content": [{"type": "image", "image": "coco/x.jpg"},
                                     {"type": "text", "text": "QUESTION"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ANSWER"}]}]}

File layouts: ``.jsonl`` is one record per line (what LLaMA-Factory,
ms-swift and ``datasets.load_dataset("json")`` read); a ``.json`` output is
one JSON array of records, what LLaVA-1.5's ``train.py`` reads with
``json.load``.
"""

from __future__ import annotations

import json
import os

from .._errors import InputError

__all__ = ["FORMATS", "LAYOUTS", "answer_of", "jsonl_to_array", "make_record", "write_dataset_info"]

FORMATS: tuple[str, ...] = ("llava", "sharegpt", "ms-swift", "swift", "hf-messages")
LAYOUTS: tuple[str, ...] = ("jsonl", "json")


def layout_of(output: str, layout: str | None) -> str:
    """``"json"`` (one array) for a ``.json`` output, ``"jsonl"`` otherwise, unless ``layout`` says."""
    if layout is None:
        return "json" if os.fspath(output).lower().endswith(".json") else "jsonl"
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


def jsonl_to_array(src: str, dst: str) -> None:
    """Rewrite a JSONL file as one JSON array (records one per line, streamed: constant memory)."""
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        fout.write("[")
        first = True
        for line in fin:
            line = line.rstrip("\n")
            if not line:
                continue
            fout.write("\n" if first else ",\n")
            fout.write(line)
            first = False
        fout.write("\n]\n" if not first else "]\n")


def dataset_info_entry(format: str, file_name: str) -> dict:
    """LLaMA-Factory's ``dataset_info.json`` entry for a file of records in ``format``."""
    if format in ("sharegpt", "ms-swift"):
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant"},
        }
    if format == "llava":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "image"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    raise InputError(f"LLaMA-Factory reads 'sharegpt' or 'llava' records, not {format!r}")


def write_dataset_info(output: str, format: str, name: str | None = None) -> str:
    """Add (or replace) the entry of ``output`` in the ``dataset_info.json`` beside it.

    Other entries of an existing file are kept.  Returns the path written.  Train with
    ``llamafactory-cli train ... dataset_dir=<that folder> dataset=<name>``.
    """
    output = os.fspath(output)
    folder = os.path.dirname(os.path.abspath(output))
    path = os.path.join(folder, "dataset_info.json")
    base = os.path.basename(output)
    name = name or os.path.splitext(base)[0]
    info = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                info = json.load(fh)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc}); fix or remove it") from None
        if not isinstance(info, dict):
            raise InputError(f"{path}: a dataset_info.json holds a JSON object")
    info[name] = dataset_info_entry(format, base)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def make_record(format: str, /, *, id: str, image: str, question: str, answer: str) -> dict:
    """One conversation record in ``format``.

    Examples
    --------
    >>> make_record("llava", id="1", image="a.jpg", question="Segment it.", answer="<seg>...</seg>")
    {'id': '1', 'image': 'a.jpg', 'conversations': [{'from': 'human', 'value': '<image>\\nSegment it.'}, \
{'from': 'gpt', 'value': '<seg>...</seg>'}]}
    >>> make_record("swift", id="1", image="a.jpg", question="Q", answer="A")
    {'id': '1', 'query': '<img>a.jpg</img>Q', 'response': 'A'}
    """
    if format == "llava":
        return {
            "id": id,
            "image": image,
            "conversations": [
                {"from": "human", "value": "<image>\n" + question},
                {"from": "gpt", "value": answer},
            ],
        }
    if format in ("sharegpt", "ms-swift"):
        return {
            "id": id,
            "messages": [
                {"role": "user", "content": "<image>" + question},
                {"role": "assistant", "content": answer},
            ],
            "images": [image],
        }
    if format == "swift":
        return {"id": id, "query": f"<img>{image}</img>{question}", "response": answer}
    if format == "hf-messages":
        return {
            "id": id,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": image}, {"type": "text", "text": question}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ],
        }
    raise InputError(f"unknown output format {format!r}; choose one of {', '.join(FORMATS)}")


def answer_of(record: dict) -> tuple[str, str, str]:
    """``(image, question, answer)`` of a record in any of the formats (detected from its keys).

    Examples
    --------
    >>> answer_of(make_record("hf-messages", id="1", image="a.jpg", question="Q", answer="A"))
    ('a.jpg', 'Q', 'A')
    """
    if not isinstance(record, dict):
        raise InputError(f"a record is a JSON object, got {type(record).__name__}")
    if "conversations" in record:
        turns = record["conversations"]
        q = next(t["value"] for t in turns if t.get("from") in ("human", "user"))
        a = next(t["value"] for t in turns if t.get("from") in ("gpt", "assistant"))
        return record.get("image", ""), q.replace("<image>\n", "").replace("<image>", ""), a
    if "query" in record and "response" in record:
        q = record["query"]
        image = ""
        if q.startswith("<img>") and "</img>" in q:
            image, q = q[5:].split("</img>", 1)
        return image, q, record["response"]
    if "messages" in record:
        msgs = record["messages"]
        user = next(m for m in msgs if m.get("role") == "user")
        asst = next(m for m in msgs if m.get("role") == "assistant")
        if isinstance(user["content"], list):
            image = next(
                (
                    p.get("image") or p.get("path") or p.get("url") or ""
                    for p in user["content"]
                    if p.get("type") == "image"
                ),
                "",
            )
            q = "".join(p.get("text", "") for p in user["content"] if p.get("type") == "text")
            a = "".join(p.get("text", "") for p in asst["content"] if p.get("type") == "text")
            return image, q, a
        images = record.get("images") or [""]
        return images[0], user["content"].replace("<image>", ""), asst["content"]
    raise InputError(f"cannot tell the format of a record with keys {sorted(record)}")
