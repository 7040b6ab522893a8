"""Syncs: list, create and edit, the detail page with its buttons and the daily chart."""

import datetime as dt

from django.contrib import messages
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import operator_required, viewer_required
from console.forms import SyncForm
from console.views.runs import with_durations
from integrations.models import RunDailyStat, Sync, SyncRun
from integrations.query import drift
from integrations.runs import sync as engine

CHART_DAYS = 30


def describe(cron: str) -> tuple[str, str]:
    """(plain words, error) for a cron expression; both empty when there is no schedule."""
    cron = " ".join((cron or "").split())
    if not cron:
        return "", ""
    try:
        return engine.describe_schedule(cron), ""
    except ValueError as e:
        return "", str(e)


def _syncs():
    latest = SyncRun.objects.filter(sync=OuterRef("pk")).order_by("-created_at", "-id")
    return Sync.objects.select_related(
        "saved_query__connection", "destination", "template"
    ).annotate(
        last_run_id=Subquery(latest.values("id")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
    )


@viewer_required
def syncs(request):
    items = list(_syncs())
    drifted = drift.drifted(items)
    for item in items:
        item.schedule_words, item.schedule_error = describe(item.schedule)
        item.last_run_label = _status_label(item.last_run_status)
        item.drift = drifted.get(item.pk, [])
    return render(request, "syncs/list.html", {"syncs": items})


def _status_label(status):
    return dict(SyncRun.Status.choices).get(status, status or "")


@viewer_required
def sync_detail(request, pk):
    sync = get_object_or_404(_syncs(), pk=pk)
    words, error = describe(sync.schedule)
    runs = with_durations(list(sync.runs.select_related("started_by", "retry_of", "sync")[:10]))
    return render(
        request,
        "syncs/detail.html",
        {
            "sync": sync,
            "schedule_words": words,
            "schedule_error": error,
            "runs": runs,
            "chart": chart(daily_rows(sync)),
            "drift": drift.drifted([sync]).get(sync.pk, []),
        },
    )


@operator_required
def add_sync(request):
    form = SyncForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        sync = form.save(commit=False)
        sync.created_by = request.user
        sync.save()
        messages.success(request, f"Saved sync “{sync.name}”.")
        return redirect("console:sync-detail", pk=sync.pk)
    return _render_form(request, form, None)


@operator_required
def edit_sync(request, pk):
    sync = get_object_or_404(Sync, pk=pk)
    form = SyncForm(request.POST or None, instance=sync)
    if request.method == "POST" and form.is_valid():
        sync = form.save()
        messages.success(request, f"Saved sync “{sync.name}”.")
        return redirect("console:sync-detail", pk=sync.pk)
    return _render_form(request, form, sync)


def _render_form(request, form, sync):
    words, error = describe(form["schedule"].value())
    if form.errors.get("schedule"):
        error = ""  # already shown as the field's error
    return render(
        request,
        "syncs/form.html",
        {"form": form, "sync": sync, "schedule_words": words, "schedule_error": error},
    )


@operator_required
def schedule_preview(request):
    """The schedule in plain words as it is typed (the form's save shows the same without JS)."""
    words, error = describe(request.GET.get("schedule", ""))
    return render(
        request,
        "syncs/form.html#schedule-words",
        {"schedule_words": words, "schedule_error": error},
    )


@operator_required
@require_POST
def start_run(request, pk):
    sync = get_object_or_404(Sync, pk=pk)
    dry_run = request.POST.get("dry_run") == "1"
    try:
        run = engine.start_run(sync, started_by=request.user, trigger="manual", dry_run=dry_run)
    except engine.SyncError as e:
        messages.error(request, str(e))
        return redirect("console:sync-detail", pk=pk)
    return redirect("console:run-detail", pk=run.pk)


@operator_required
@require_POST
def pause_sync(request, pk):
    """Pause or resume (`paused=1|0`); a paused sync does not run on its schedule."""
    sync = get_object_or_404(Sync, pk=pk)
    paused = request.POST.get("paused") == "1"
    Sync.objects.filter(pk=pk).update(paused=paused, updated_at=timezone.now())
    sync.paused = paused
    if request.htmx:
        return render(request, "syncs/detail.html#state", {"sync": sync})
    messages.success(request, f"{'Paused' if paused else 'Resumed'} “{sync.name}”.")
    return redirect("console:sync-detail", pk=pk)


# The chart: rows per day and success rate, as server-rendered SVG.


def daily_rows(sync, days=CHART_DAYS, today=None):
    """Rows sent/skipped/failed per day for the last `days` days, oldest first.

    Days come from the runs' stored counters grouped by the day each run finished (or was
    created, while it is active): run summaries are kept when row results are pruned, so this
    is cheap and complete. RunDailyStat only fills days that have no run summary left
    (history rolled up before runs were deleted); a day is never counted from both. Dry runs
    send nothing and are left out.
    """
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    by_day = {first + dt.timedelta(days=i): None for i in range(days)}
    runs = (
        SyncRun.objects.filter(
            sync=sync,
            dry_run=False,
            # Bounds the scan to the (sync, -created_at) index; a run finishes after it is created.
            created_at__gte=timezone.make_aware(dt.datetime.combine(first, dt.time.min))
            - dt.timedelta(days=7),
        )
        .annotate(day=TruncDate(Coalesce("finished_at", "created_at")))
        .filter(day__gte=first)
        .values("day")
        .annotate(sent=Sum("sent"), skipped=Sum("skipped"), failed=Sum("failed"))
        .order_by()
    )
    for row in runs:
        if row["day"] in by_day:
            by_day[row["day"]] = {k: row[k] or 0 for k in ("sent", "skipped", "failed")}
    for stat in RunDailyStat.objects.filter(sync=sync, day__gte=first, day__lte=today):
        if by_day.get(stat.day) is None:
            by_day[stat.day] = {"sent": stat.sent, "skipped": stat.skipped, "failed": stat.failed}
    return [
        {"day": day, **(counts or {"sent": 0, "skipped": 0, "failed": 0})}
        for day, counts in sorted(by_day.items())
    ]


def chart(days, width=720, height=180):
    """SVG geometry for stacked bars (rows per day) and dots (success rate = sent / (sent + failed)).

    Example: a day with 90 sent, 10 failed is a bar of 100 rows and a dot at 90%.
    A day with no rows has no bar and no dot.
    """
    left, right, top, bottom = 44, 44, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([d["sent"] + d["skipped"] + d["failed"] for d in days] + [0])
    scale = _nice_ceiling(peak)
    step = plot_w / max(len(days), 1)
    bars, points = [], []
    totals = {"sent": 0, "skipped": 0, "failed": 0}
    for i, d in enumerate(days):
        x = left + i * step
        y = top + plot_h
        rects = []
        for status in ("sent", "skipped", "failed"):
            totals[status] += d[status]
            h = plot_h * d[status] / scale if scale else 0
            if h > 0:
                y -= h
                rects.append({"status": status, "y": round(y, 1), "h": round(h, 1)})
        attempted = d["sent"] + d["failed"]
        rate = d["sent"] / attempted if attempted else None
        if rate is not None:
            points.append({"x": round(x + step / 2, 1), "y": round(top + plot_h * (1 - rate), 1)})
        bars.append(
            {
                **d,
                "x": round(x + step * 0.1, 1),
                "w": round(step * 0.8, 1),
                "rects": rects,
                "rate": None if rate is None else round(100 * rate, 1),
            }
        )
    attempted = totals["sent"] + totals["failed"]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "mid": top + plot_h / 2,
        "plot_h": plot_h,
        "scale": scale,
        "bars": bars,
        "points": points,
        "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
        "totals": totals,
        "rate": None if not attempted else round(100 * totals["sent"] / attempted, 1),
        "first_day": days[0]["day"] if days else None,
        "last_day": days[-1]["day"] if days else None,
    }


def _nice_ceiling(value):
    """The smallest 1, 2 or 5 × 10^n at or above value (0 stays 0): 730 → 1000, 120 → 200."""
    if value <= 0:
        return 0
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude
