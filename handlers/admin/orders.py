"""The orders list with its saved views and filters, and the order page with its live updates."""

from collections import defaultdict

from flask import current_app, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from peewee import SQL, Case, Value, fn

from adapter import order_list, rendering, store, timeline
from adapter.errors import NotFound, ValidationFailed
from adapter.models import FulfillmentOrder, Order, OutboxMessage, TimelineEvent
from adapter.vocabulary import FOStatus, HoldReason
from handlers.orders import decode_cursor, encode_cursor
from handlers.parsing import load, now
from handlers.schemas import OrderQuerySchema

from . import labels
from .banners import events_by_fulfillment_order, fulfillment_order_banners
from .blueprint import bp
from .i18n import format_moment

PAGE_SIZE = 50
FILTERS = ("order_status", "payment_status", "fulfillment_status", "return_status", "service",
           "needs_attention")
order_query = OrderQuerySchema()


class SavedView:
    """A tab of the orders list: a fixed combination of the list's filters (SPEC 8)."""

    def __init__(self, key, title, **filters):
        self.key, self.title, self.filters = key, title, filters

    def matches(self, filters):
        """Tell whether `filters` are exactly this view's."""
        return _comparable(filters) == _comparable(self.filters)


SAVED_VIEWS = (
    SavedView("all", _l("All")),
    SavedView("unfulfilled", _l("Unfulfilled"), order_status="open",
              fulfillment_status="unfulfilled,partially_fulfilled"),
    SavedView("unpaid", _l("Unpaid"), order_status="open", payment_status="unpaid"),
    SavedView("expiring", _l("Expiring"), payment_status="expiring"),
    SavedView("in_progress", _l("In progress"), fulfillment_status="in_progress"),
    SavedView("on_hold", _l("On hold"), fulfillment_status="on_hold"),
    SavedView("scheduled", _l("Scheduled"), fulfillment_status="scheduled"),
    SavedView("needs_attention", _l("Needs attention"), needs_attention="true"),
    SavedView("return_requested", _l("Return requested"), return_status="return_requested"),
    SavedView("archived", _l("Archived"), order_status="archived"),
)


def _comparable(filters):
    return {name: frozenset(value.split(",")) for name, value in filters.items() if value}


def requested_filters():
    """Return the query string's filters (several of one = any of them) and its search `q`."""
    filters = {}
    for name in FILTERS:
        values = []
        for given in request.args.getlist(name):
            values += [v.strip() for v in given.split(",") if v.strip() and v.strip() not in values]
        if values:
            filters[name] = ",".join(values)
    # A search is one value, commas included: the API finds it whole.
    search = request.args.get("q", "").strip()
    if search:
        filters["q"] = search
    return filters


@bp.get("/")
def index():
    """Open the orders list."""
    return orders()


@bp.get("/orders")
def orders():
    """List orders newest first, in a saved view or with the filters chosen, a page at a time."""
    filters = requested_filters()
    cursor = request.args.get("cursor") or None
    settings = current_app.extensions["adapter_settings"]
    page = dict(filters=filters, saved_views=SAVED_VIEWS, services=settings.services, errors={},
                orders=[], older=None, newest=None)
    try:
        args = load(order_query, {**filters, "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})})
        after = decode_cursor(cursor) if cursor else None
    except ValidationFailed as exc:
        page["errors"] = exc.errors
        return render_template("admin/orders.html", **page), 422
    with store.snapshot():
        found, more = order_list.list_orders(args, PAGE_SIZE, after, now(), settings.expiring_days)
        page["orders"] = [_listed(order) for order in rendering.order_summaries(found, now())]
    if more:
        page["older"] = url_for("admin.orders", **filters, cursor=encode_cursor(found[-1].id))
    if cursor:
        page["newest"] = url_for("admin.orders", **filters)
    return render_template("admin/orders.html", **page)


def _listed(order):
    address = order["shipping_address"] or {}
    return {
        **order,
        "customer_name": address.get("name"),
        "contact": address.get("phone") or order["email"],
        "services": sorted(set(order["services"]), key=lambda key: (key is None, key or "")),
    }


@bp.get("/orders/<id:order_id>")
def order(order_id):
    """Show one order: statuses, banners, fulfillment orders with their forms, payments, timeline."""
    return order_page(order_id)


@bp.get("/orders/<id:order_id>/live")
def order_live(order_id):
    """Answer the open page's poll: 204 while the order is as the page drew it, else its new parts."""
    with store.snapshot():
        version = live_version(order_id)
        if version is None:
            raise NotFound(f"Order {order_id} does not exist.")
        if request.args.get("version") == version:
            return "", 204
    return order_page(order_id, template="admin/_order_live.html")


# The newest timeline events the order page draws, and each shipment's latest delivery event: the
# whole timeline (`?timeline=all`) and every delivery history (`?deliveries=all`) are one link
# away, so a long history does not slow down every visit and every live update.
TIMELINE_SHOWN = 50
UNFOLDED = ("timeline", "deliveries")


def order_page(order_id, refusal=None, template="admin/order.html"):
    """Render the order page as it is now; after a refused form, with its reasons and status."""
    unfolded = {part: "all" for part in UNFOLDED if request.args.get(part) == "all"}
    with store.snapshot():
        order_view = rendering.order_view_by_id(order_id, now())
        if order_view is None:
            raise NotFound(f"Order {order_id} does not exist.")
        events = timeline.events_of(order_id)
        version = live_version(order_id)
    concerning = events_by_fulfillment_order(events)
    shipments = defaultdict(list)
    for fulfillment in order_view["fulfillments"]:
        shipments[fulfillment["fulfillment_order_id"]].append(fulfillment)
    page = render_template(
        template,
        order=order_view,
        version=version,
        shipments=shipments,
        banners={fo["id"]: fulfillment_order_banners(fo, concerning[fo["id"]])
                 for fo in order_view["fulfillment_orders"]},
        lines={line["id"]: line for line in order_view["line_items"]},
        events=list(reversed(events))[: None if "timeline" in unfolded else TIMELINE_SHOWN],
        events_total=len(events),
        unfolded=unfolded,
        all_deliveries=None if "deliveries" in unfolded else url_for(
            "admin.order", order_id=order_id, **unfolded, deliveries="all"),
        refusal=refusal,
        hold_reasons=list(HoldReason),
    )
    return page, refusal.status if refusal else 200


def live_version(order_id):
    """Return what changes whenever anything the order page shows changes, or None for no order.

    One statement (the page and each poll read it): the count and last id of the order's timeline
    events, its FOs' count, last `updated_at` and how many scheduled ones have come due (they open
    by themselves, without an event), the order's `updated_at`, and its FOs' outbox messages
    (a delivery attempt changes no event or FO, but the not-received banner tells of it).
    """
    postgres = store.is_postgres()
    sql = _LIVE_VERSION_SQL.get(postgres)
    if sql is None:
        sql = _LIVE_VERSION_SQL[postgres] = _live_version_sql()
    parts = store.database.execute_sql(
        sql, (FulfillmentOrder.fulfill_at.db_value(now()), order_id)).fetchone()
    if parts is None:
        return None
    return "-".join(str(part) for part in parts).replace(" ", "T")


# Its text is built once per store kind: building it costs as much as running it, every 2 s per page.
_LIVE_VERSION_SQL = {}
_NOW, _ORDER_ID = "live-version-now", -1


def _live_version_sql():
    """Return the live version's SQL, whose two parameters are the time now and the order's id."""
    fos = FulfillmentOrder.select().where(FulfillmentOrder.order == Order.id)
    sent = FulfillmentOrder.select().join(
        OutboxMessage, on=(OutboxMessage.target == FulfillmentOrder.service)
        & (OutboxMessage.fulfillment_order_id == FulfillmentOrder.id)).where(
        FulfillmentOrder.order == Order.id)
    events = TimelineEvent.select().where(TimelineEvent.order == Order.id)
    one, zero = SQL("1"), SQL("0")
    due = (FulfillmentOrder.status == SQL(f"'{FOStatus.SCHEDULED}'")) & (
        FulfillmentOrder.fulfill_at <= Value(_NOW, converter=False))
    failed = OutboxMessage.status == SQL("'failed'")
    query = Order.select(
        events.select(fn.COUNT(TimelineEvent.id)),
        events.select(fn.MAX(TimelineEvent.id)),
        fos.select(fn.COUNT(FulfillmentOrder.id)),
        fos.select(fn.MAX(FulfillmentOrder.updated_at)),
        fos.select(fn.SUM(Case(None, [(due, one)], zero))),
        Order.updated_at,
        sent.select(fn.COUNT(OutboxMessage.id)),
        sent.select(fn.SUM(OutboxMessage.attempts)),
        sent.select(fn.SUM(Case(None, [(failed, one)], zero))),
    ).where(Order.id == Value(_ORDER_ID, converter=False))
    sql, params = store.database.get_sql_context().sql(query).query()
    if params != [_NOW, _ORDER_ID]:
        raise RuntimeError(f"the live version's statement has parameters {params!r}")
    return sql


@bp.app_template_global()
def status_label(group, value):
    """Return the page's word for a status or reason (see labels.GROUPS)."""
    return labels.label(group, value)


@bp.app_template_global()
def status_tone(value):
    """Return the badge tone of a status."""
    return labels.tone(value)


# `badge` and `moment` are drawn hundreds of times a page: Python, not template macros.
@bp.app_template_global()
def badge(group, value):
    """Return a status as a badge of its tone, or nothing for no status."""
    if not value:
        return ""
    return Markup(f'<span class="badge badge-{escape(labels.tone(value))}">'
                  f"{escape(labels.label(group, value))}</span>")


@bp.app_template_global()
def moment(value):
    """Return a time as `<time>` in the admin time zone, or nothing for no time."""
    if not value:
        return ""
    stamp = value if isinstance(value, str) else value.isoformat()
    return Markup(f'<time datetime="{escape(stamp)}">{escape(format_moment(value))}</time>')


@bp.app_template_global()
def status_event(fulfillment):
    """Return the delivery event a shipment's status comes from: the latest by `happened_at`
    and, among events of that time, the furthest along (as `shipment_status` is kept)."""
    events = fulfillment["events"]
    return next((event for event in reversed(events)
                 if event["status"] == fulfillment["shipment_status"]), events[-1])


@bp.app_template_global()
def service_name(key):
    """Return a service's display name; merchant-managed for None."""
    if key is None:
        return labels.MERCHANT_MANAGED
    service = current_app.extensions["adapter_settings"].services.get(key)
    return service.name if service else key


@bp.app_template_global()
def is_web_link(url):
    """Tell whether a URL may become a link: http or https only."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))
