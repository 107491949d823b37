"""One case's file (案卷) as a printable, self-contained HTML page: facts, every step, every task, every image.

What a bureau hands to a court or a review (执法全过程记录): the page holds its own stylesheet (with
print rules) and its images as ``data:`` URIs, so the saved file stands alone in an archive.  Each
evidence file shows the sha256 the case recorded beside the one recomputed from the store when the
page was made; a mismatch or a missing file is said plainly, and such a file is not shown.  Every
text goes through :meth:`CaseFile.text`, which escapes it and, for a reader who may not see plates,
blanks the plate wherever it appears.

Example::

    >>> CaseFile.text_for("<b>浙A12345</b> parked", hidden_plate="浙A12345")
    '&lt;b&gt;[车牌已隐去 plate hidden]&lt;/b&gt; parked'
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional
from zoneinfo import ZoneInfo

from contract import CaseEvent, Task
from history.facts import as_utc, naive_utc
from history.queries import CaseFacts
from nonsite.config import City

PLATE_HIDDEN = "[车牌已隐去 plate hidden]"
STATUS_LABELS = {"intact": "✔ 完整 intact", "mismatch": "✘ 哈希不符 HASH MISMATCH",
                 "missing": "✘ 文件缺失 FILE MISSING", "purged": "已按保存期限删除 PURGED (retention)"}


@dataclass(frozen=True)
class EvidenceCheck:
    """One evidence file of the case: the sha256 recorded, the one recomputed now (None: not in the store), and
    the bytes to show (None when not shown, ``withheld`` says why)."""

    kind: str
    sha256: str
    recomputed: Optional[str]
    media_type: str = ""
    data: Optional[bytes] = None
    withheld: str = ""
    step: Optional[int] = None  # the audit step that brought it, for files not in the case snapshot
    purged: bool = False  # deleted by the retention rule: absent as the law allows, not lost

    @property
    def status(self) -> str:
        if self.recomputed is None:
            return "purged" if self.purged else "missing"
        return "intact" if self.recomputed == self.sha256 else "mismatch"


@dataclass(frozen=True)
class CaseFile:
    """Everything the page shows, gathered for one reader."""

    case: CaseFacts
    events: list[CaseEvent]
    tasks: list[Task]
    evidence: list[EvidenceCheck]
    reader: str  # "name (person id, role)"
    reason: str
    made_at: datetime  # aware
    show_plate: bool

    def text(self, value: Any) -> str:
        return self.text_for(value, None if self.show_plate else self.case.incident.plate)

    @staticmethod
    def text_for(value: Any, hidden_plate: Optional[str]) -> str:
        """``value`` as HTML text; ``hidden_plate`` replaced wherever it appears (a note may quote it)."""
        shown = "-" if value is None or value == "" else str(value)
        if hidden_plate:
            shown = shown.replace(hidden_plate, PLATE_HIDDEN)
        return html.escape(shown, quote=True)


STYLE = """
body{font:14px/1.45 "Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:#111;margin:24px auto;
max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #333;padding-bottom:2px}
.meta{color:#555;font-size:12px}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #999;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eee}table.facts th{width:22%}.hash{font-family:monospace;font-size:11px;word-break:break-all}
.refused{color:#a00}.bad{color:#fff;background:#a00;padding:1px 4px;font-weight:bold}.ok{color:#060}
figure{margin:12px 0;border:1px solid #999;padding:8px;break-inside:avoid;page-break-inside:avoid}
figure img{max-width:100%;max-height:480px;display:block;margin-bottom:6px}
@page{size:A4;margin:14mm}
@media print{body{margin:0;max-width:none;padding:0;font-size:11px}thead{display:table-header-group}
tr,figure{break-inside:avoid;page-break-inside:avoid}figure img{max-height:110mm}h2{break-after:avoid}
a{color:inherit;text-decoration:none}}
"""


def render(city: City, page: CaseFile) -> str:
    """The whole page."""
    incident = page.case.incident
    title = f"案卷 Case file {incident.incident_id}"
    return "".join([
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{page.text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{page.text(title)}</h1>",
        f'<p class="meta">{page.text(city.system.city.name_zh)} {page.text(city.system.city.name)} · '
        f"导出 Exported {page.text(_local(page.made_at, city))} · {page.text(page.reader)} · "
        f"事由 Reason: {page.text(page.reason)}</p>",
        "<h2>案件信息 Case</h2>", _facts(city, page),
        f"<h2>执法过程 Audit log ({len(page.events)})</h2>", _steps(city, page),
        f"<h2>任务 Tasks ({len(page.tasks)})</h2>", _tasks(city, page),
        f"<h2>证据 Evidence ({len(page.evidence)})</h2>", _evidence(page),
        '<p class="meta">sha256 recorded = the hash the case carried; recomputed = the hash of the file in the '
        "evidence store when this page was made. Check an image saved from this page with <code>sha256sum</code>."
        "</p></body></html>"])


def _local(moment: Optional[datetime | str], city: City) -> Optional[str]:
    """A moment (aware, naive UTC or ISO text) in the city's time, to the second, with its offset."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        moment = naive_utc(moment)
    aware = moment if moment.tzinfo else as_utc(moment)
    return aware.astimezone(ZoneInfo(city.system.city.timezone)).isoformat(sep=" ", timespec="seconds")


def _person(city: City, person_id: Optional[str]) -> Optional[str]:
    if not person_id:
        return None
    known = {o.id: o.name for o in city.officers} | {u.id: u.name for u in city.users}
    return f"{known[person_id]} ({person_id})" if person_id in known else person_id


def _rows(page: CaseFile, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{page.text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell if isinstance(cell, Raw) else f"<td>{page.text(cell)}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if rows else "<p>-</p>"


class Raw(str):
    """A table cell already rendered (its texts escaped)."""


def _facts(city: City, page: CaseFile) -> str:
    case, incident = page.case, page.case.incident
    scenario, camera = city.scenario(incident.scenario), city.camera(incident.camera_id)
    grid = next((g.name for g in city.grids if g.id == incident.grid_id), None)
    plate = incident.plate if page.show_plate else (PLATE_HIDDEN if incident.plate else None)
    rows = [
        ("案件编号 Case id", incident.incident_id),
        ("场景 Scenario", f"{scenario.label_zh} {scenario.label_en} ({incident.scenario})" if scenario
         else incident.scenario),
        ("摄像头 Camera", f"{camera.name} ({incident.camera_id})" if camera else incident.camera_id),
        ("地址 Address", incident.address or (camera.location.address if camera else "")),
        ("坐标 Position", _position(incident.lat, incident.lon, camera)),
        ("网格 Grid", f"{grid} ({incident.grid_id})" if grid else incident.grid_id),
        ("状态 State", incident.state.upper()),
        ("队员 Officer", _person(city, incident.officer_id or (page.tasks[-1].officer_id if page.tasks else None))),
        ("车牌 Plate", plate),
        ("发现 First seen", _local(incident.first_seen, city)),
        ("最后发现 Last seen", _local(incident.last_seen, city)),
        ("首次派遣 First dispatched", _local(case.dispatched_at, city)),
        ("处置期限 Deadline", _local(case.deadline_at, city)),
        ("结案 Closed", _local(case.closed_at, city)),
        ("用时 Minutes to close", None if case.minutes_to_close is None else round(case.minutes_to_close, 1)),
        ("最后更新 Updated", _local(incident.updated_at, city)),
        ("检测次数 Detections", incident.detections),
        ("误报 False alarm / 返工 Reworked", f"{_yes(case.rejected)} / {_yes(case.reworked)}"),
        ("首违 First offence / 回潮 Recurrence of",
         f"{_yes(incident.first_offence)} / {incident.recurrence_of or '-'}"),
    ]
    body = "".join(f"<tr><th>{page.text(label)}</th><td>{page.text(value)}</td></tr>" for label, value in rows)
    return f'<table class="facts">{body}</table>'


def _position(lat: Optional[float], lon: Optional[float], camera: Any) -> Optional[str]:
    if lat is None and camera is not None:
        lat, lon = camera.location.lat, camera.location.lon
    return None if lat is None else f"{lat:.6f}, {lon:.6f}"


def _yes(flag: bool) -> str:
    return "是 yes" if flag else "否 no"


def _steps(city: City, page: CaseFile) -> str:
    rows = []
    for event in page.events:
        result = Raw(f"<td>{page.text('已执行 applied')}</td>" if event.applied else
                     f'<td class="refused">{page.text("被拒绝 refused")}: {page.text(event.reason)}</td>')
        hashes = Raw('<td class="hash">' + "<br>".join(page.text(sha) for sha in event.evidence) + "</td>")
        source = Raw(f'<td class="hash">{page.text(event.source)}</td>')
        rows.append([event.seq, _local(event.at, city), _person(city, event.actor), event.action,
                     f"{event.from_state or '-'} → {event.to_state or '-'}", result,
                     event.reason if event.applied else "", hashes, source])
    return _rows(page, ["#", "时间 When", "人员 Who", "动作 Action", "状态 From → to", "结果 Result", "说明 Reason",
                        "证据 Evidence", "来源 Source"], rows)


def _tasks(city: City, page: CaseFile) -> str:
    rows = [[task.task_id, _person(city, task.officer_id), _local(task.assigned_at, city), _local(task.accept_by, city),
             _local(task.deadline, city), task.status, task.attempt, task.note] for task in page.tasks]
    return _rows(page, ["任务 Task", "队员 Officer", "派遣 Assigned", "接单期限 Accept by", "处置期限 Deadline",
                        "状态 Status", "次数 Attempt", "备注 Note"], rows)


def _evidence(page: CaseFile) -> str:
    return "".join(_figure(page, item) for item in page.evidence) or "<p>-</p>"


def _figure(page: CaseFile, item: EvidenceCheck) -> str:
    tone = {"intact": "ok", "purged": "meta"}.get(item.status, "bad")
    status = f'<span class="{tone}">{page.text(STATUS_LABELS[item.status])}</span>'
    if item.data is not None:
        encoded = base64.b64encode(item.data).decode("ascii")
        shown = f'<img src="data:{page.text(item.media_type)};base64,{encoded}" alt="{page.text(item.kind)}">'
    else:
        shown = f"<p>{page.text('图像未附 image not included: ' + item.withheld)}</p>"
    origin = f" · 步骤 step {item.step}" if item.step is not None else ""
    return (f"<figure>{shown}<figcaption>{page.text(item.kind + origin)} · {status}<br>"
            f'sha256 recorded: <span class="hash">{page.text(item.sha256)}</span><br>'
            f'sha256 recomputed: <span class="hash">{page.text(item.recomputed or "— (no file)")}</span>'
            "</figcaption></figure>")
