"""A local stand-in for the AI scan service, so the whole scan flow runs on one machine.

POST /scan takes multipart `file` (text or .docx) and/or `text` plus `force_llm`, and answers
`{"data": [{"risk", "category", "context"}], "source": "model" | "llm"}`. The "analysis" is a
keyword match per sentence; `force_llm` changes only the reported source. Errors use FastAPI's
`{"detail": ...}` shape, as the real service does.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Annotated, Any
from xml.etree import ElementTree

import msgspec
from litestar import Litestar, Request, Response, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body

MAX_BODY_BYTES = 50 * 1024 * 1024
MAX_CONTEXT_CHARS = 500
TEXT_EXTENSIONS = (".txt", ".text", ".md", ".markdown", ".csv")
DOCX_EXTENSION = ".docx"
DOCX_BODY = "word/document.xml"
_WORD_NAMESPACE = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class Rule(msgspec.Struct, frozen=True):
    category: str
    risk: str
    keywords: re.Pattern[str]


def _rule(category: str, risk: str, *keywords: str) -> Rule:
    return Rule(category, risk, re.compile(r"\b(?:" + "|".join(keywords) + r")\b", re.IGNORECASE))


RULES = (
    _rule(
        "Financial",
        "Budget pressure may lead to cost overruns",
        r"budgets?",
        r"costs?",
        r"cost overruns?",
        r"overruns?",
        r"funding",
        r"expensive",
        r"over budget",
    ),
    _rule(
        "Schedule",
        "Timeline pressure may cause missed deadlines",
        r"deadlines?",
        r"timelines?",
        r"delays?",
        r"delayed",
        r"behind schedule",
        r"aggressive",
        r"milestones?",
    ),
    _rule(
        "Dependency",
        "An external dependency may block progress",
        r"dependency",
        r"dependencies",
        r"depend(?:s|ing)? on",
        r"rel(?:y|ies|ying) on",
        r"third[- ]party",
        r"upstream",
        r"blocked",
    ),
    _rule(
        "Vendor",
        "Vendor reliability or contract terms may cause problems",
        r"vendors?",
        r"suppliers?",
        r"contractors?",
        r"outsourc\w*",
    ),
    _rule(
        "Security",
        "Security weakness may expose systems or data",
        r"security",
        r"breach\w*",
        r"vulnerabilit\w+",
        r"passwords?",
        r"encrypt\w*",
        r"unauthori[sz]ed",
    ),
    _rule(
        "Compliance",
        "Regulatory or compliance obligations may not be met",
        r"compliance",
        r"compliant",
        r"regulat\w+",
        r"gdpr",
        r"hipaa",
        r"legal",
        r"audits?",
        r"licens\w+",
    ),
    _rule(
        "Resource",
        "Insufficient staffing may slow or stop the work",
        r"staffing",
        r"understaffed",
        r"turnover",
        r"attrition",
        r"hiring",
        r"key person",
        r"resources?",
    ),
    _rule(
        "Technical",
        "Technical debt or scalability limits may cause failures",
        r"legacy",
        r"technical debt",
        r"scalab\w+",
        r"outages?",
        r"downtime",
        r"performance",
    ),
    _rule(
        "Scope",
        "Scope creep or unclear requirements may derail delivery",
        r"scope",
        r"unclear requirements",
        r"requirements (?:are|were|remain) unclear",
        r"changing requirements",
    ),
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
TRUE_WORDS = frozenset({"true", "1", "on", "yes"})


class DemoRisk(msgspec.Struct, frozen=True):
    risk: str
    category: str
    context: str


class DemoScanResult(msgspec.Struct, frozen=True):
    data: list[DemoRisk]
    source: str


class DemoScanForm(msgspec.Struct):
    file: UploadFile | None = None
    text: str | None = None
    force_llm: str | None = None


def find_risks(text: str) -> list[DemoRisk]:
    """One risk per (sentence, matching rule), in the order they appear."""
    risks: list[DemoRisk] = []
    for sentence in _SENTENCE_END.split(text):
        context = " ".join(sentence.split())
        if not context:
            continue
        for rule in RULES:
            if rule.keywords.search(context):
                risks.append(
                    DemoRisk(risk=rule.risk, category=rule.category, context=context[:MAX_CONTEXT_CHARS])
                )
    return risks


def _unreadable(filename: str) -> HTTPException:
    return HTTPException(
        status_code=415,
        detail=f"{filename}: the demo AI service reads text and .docx files only; send the text instead",
    )


def _docx_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        if archive.getinfo(DOCX_BODY).file_size > MAX_BODY_BYTES:
            raise zipfile.BadZipFile("document.xml expands beyond the body limit")
        xml = archive.read(DOCX_BODY)
    # The expat bundled with Python 3.11 refuses entity-expansion bombs; this is a local tool.
    document = ElementTree.fromstring(xml)  # noqa: S314
    paragraphs = (
        "".join(node.text or "" for node in paragraph.iter(f"{_WORD_NAMESPACE}t"))
        for paragraph in document.iter(f"{_WORD_NAMESPACE}p")
    )
    return "\n".join(paragraphs)


async def _file_text(upload: UploadFile) -> str:
    content = await upload.read()
    name = upload.filename.lower()
    if name.endswith(DOCX_EXTENSION):
        try:
            return _docx_text(content)
        except (zipfile.BadZipFile, KeyError, ElementTree.ParseError):
            raise _unreadable(upload.filename) from None
    if not (name.endswith(TEXT_EXTENSIONS) or upload.content_type.startswith("text/")):
        raise _unreadable(upload.filename)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _unreadable(upload.filename) from None
    if "\x00" in text:
        raise _unreadable(upload.filename)
    return text


@post("/scan", status_code=200)
async def scan(
    data: Annotated[DemoScanForm, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> DemoScanResult:
    """Find risks in the uploaded file and/or the text."""
    parts = [data.text or ""]
    if data.file is not None:
        parts.append(await _file_text(data.file))
    text = "\n".join(parts)
    if not text.strip():
        raise HTTPException(status_code=400, detail="Provide a file or text to scan")
    force_llm = (data.force_llm or "").strip().lower() in TRUE_WORDS
    return DemoScanResult(data=find_risks(text), source="llm" if force_llm else "model")


def _detail_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    return Response({"detail": exc.detail}, status_code=exc.status_code)


def create_demo_app() -> Litestar:
    return Litestar(
        route_handlers=[scan],
        exception_handlers={HTTPException: _detail_response},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
    )


def serve(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_demo_app(), host=host, port=port, log_level="info", server_header=False)
