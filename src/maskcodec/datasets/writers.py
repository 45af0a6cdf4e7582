"""Conversation records in the formats MLLM trainers read (one JSON object per line).

``"llava"`` (LLaVA, and Text4Seg's LLaVA path)::

    {"id": ..., "image": "coco/x.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nQUESTION"},
                       {"from": "gpt", "value": "ANSWER"}]}

``"sharegpt"`` (ShareGPT messages with an image list: LLaMA-Factory, ms-swift 2+)::

    {"id": ..., "messages": [{"role": "user", "content": "<image>QUESTION"},
                             {"role": "assistant", "content": "ANSWER"}],
     "images": ["coco/x.jpg"]}

``"swift"`` (ms-swift query/response, Qwen-VL style, Text4Seg's ms-swift path)::

    {"id": ..., "query": "<img>coco/x.jpg</img>QUESTION", "response": "ANSWER"}

``"hf-messages"`` (Hugging Face chat templates with content parts: Qwen2-VL,
InternVL, LLaVA-OneVision processors)::

    {"id": ..., "messages": [
        {"role": "user", "content": [{"type": "image", "image": "coco/x.jpg"},
                                     {"type": "text", "text": "QUESTION"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ANSWER"}]}]}
"""

from __future__ import annotations

from .._errors import InputError

__all__ = ["FORMATS", "answer_of", "make_record"]

FORMATS: tuple[str, ...] = ("llava", "sharegpt", "swift", "hf-messages")


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
    if format == "sharegpt":
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
