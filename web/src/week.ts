// Issues 19 and 21 at the desk: open one booking (by id or reference) and see its reference, note and
// who did each step; edit the note; move it to a free time (FindSlots, RescheduleBooking; a refusal is
// said in words); take a payment or give a refund (integer paise); print its receipt. And the day
// sheet: every doctor of a date side by side, printable.
import { api, problem } from "./api.js";
import { $, clearProblems, coded, el, maskPhone, say, showProblem, words } from "./ui.js";
import { formatMinor } from "./money.js";
import type { Doctor } from "../gen/clinic/v1/doctor_pb.js";
import {
  type Booking,
  BookingStatus,
  EventType,
  type Money,
  PaymentMethod,
  PaymentStatus,
  RejectionReason,
} from "../gen/clinic/v1/common_pb.js";

export interface WeekContext {
  doctors(): Doctor[];
  today(): string;
}

const enumName = (e: Record<number, string>, v: number, prefix: string) => (e[v] ?? String(v)).replace(prefix, "");
const price = (m?: Money) => (m ? formatMinor(m.amountMinor, m.currency) : "–");
const POLL_MS = 300;
const OUTCOME_WAIT_MS = 20_000;


/** "1,150.50" or "500" rupees as integer paise; null when it is not an amount. */
export function parseRupees(text: string): bigint | null {
  const m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(text.replaceAll(",", ""));
  if (!m) return null;
  return BigInt(m[1]) * 100n + BigInt((m[2] ?? "").padEnd(2, "0"));
}

/** Print one part of the page: the print stylesheet shows only `what` (body[data-print]). */
function printOnly(what: "receipt" | "daysheet"): void {
  document.body.dataset.print = what;
  window.print();
}
window.addEventListener("afterprint", () => delete document.body.dataset.print);

export function startWeek(ctx: WeekContext) {
  let current: Booking | null = null;
  const doctorName = (id: string) => {
    const d = ctx.doctors().find((x) => x.id === id);
    return d ? d.name : id;
  };
  const doctorLabel = (id: string) => {
    const d = ctx.doctors().find((x) => x.id === id);
    return d ? `${d.name} (${d.code || id})` : id;
  };

  function render(b: Booking): void {
    current = b;
    $("bk-panel").hidden = false;
    $("bk-reference").textContent = b.reference || b.id;
    $("bk-reference").title = b.id;
    const status = enumName(BookingStatus, b.status, "");
    const rows: [string, string | HTMLElement][] = [
      ["Reference", b.reference],
      ["Status", coded("span", status)],
      ["Patient", [b.patient?.name ?? "", maskPhone(b.patient?.phone ?? "")].filter(Boolean).join(" · ")],
      ["Doctor", b.doctorId ? doctorLabel(b.doctorId) : "none"],
      ["When", `${b.appointmentDate}${b.startTime ? ` at ${b.startTime}` : ""}`],
      ["Token", b.token ? String(b.token) : "–"],
      ["Services", b.services.map((s) => s.name).join(", ")],
      ["Final price", price(b.finalPrice)],
    ];
    const p = b.payment;
    if (p) {
      rows.push(["Payment", coded("span", enumName(PaymentStatus, p.status, "PAYMENT_STATUS_"))]);
      rows.push(["Paid", price(p.paid)]);
      if (p.refunded?.amountMinor) rows.push(["Refunded", price(p.refunded)]);
      if (p.refundDue?.amountMinor) rows.push(["Refund due", price(p.refundDue)]);
    }
    $("bk-facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", {}, v)]));
    $<HTMLTextAreaElement>("bk-note").value = b.note;
    if (current?.patient?.id !== $("pt-form").dataset.patient) {
      $("pt-form").dataset.patient = b.patient?.id ?? "";
      $<HTMLInputElement>("pt-name").value = b.patient?.name ?? "";
    }
    $("bk-history").replaceChildren(
      ...b.history.map((ev) => {
        const by = ev.actor?.sub ? ` — by ${ev.actor.sub} (${ev.actor.role})` : "";
        const li = coded("li", enumName(EventType, ev.type, "EVENT_TYPE_"), `${ev.message ? `: ${ev.message}` : ""}${by}`);
        li.dataset.sequence = String(ev.sequence);
        return li;
      }),
    );
    const date = $<HTMLInputElement>("rs-date");
    if (!date.value) date.value = b.appointmentDate;
    const doctor = $<HTMLSelectElement>("rs-doctor");
    doctor.replaceChildren(
      el("option", { value: "", textContent: "Same doctor" }),
      ...ctx
        .doctors()
        .filter((d) => !d.retired) // a retired doctor takes no moves
        .map((d) => el("option", { value: d.id, textContent: `${d.name} (${d.code})`, title: d.id })),
    );
    renderReceipt(b);
  }

  function renderReceipt(b: Booking): void {
    const clinic = document.querySelector<HTMLMetaElement>('meta[name="clinic-name"]')?.content || "Clinic";
    const p = b.payment;
    const rows: [string, string][] = [
      ["Reference", b.reference],
      ["Date", `${b.appointmentDate}${b.startTime ? ` ${b.startTime}` : ""}`],
      ["Patient", b.patient?.name ?? ""],
      ["Doctor", b.doctorId ? doctorName(b.doctorId) : ""],
      ...b.services.map((s): [string, string] => [s.name, price(s.price)]),
      ["Base price", price(b.basePrice)],
    ];
    if (b.discount?.amount?.amountMinor) rows.push([`Discount ${b.discount.percent}%`, `-${price(b.discount.amount)}`]);
    rows.push(["Total", price(b.finalPrice)], ["Paid", price(p?.paid)]);
    if (p?.refunded?.amountMinor) rows.push(["Refunded", price(p.refunded)]);
    if (p?.method) rows.push(["Method", words(enumName(PaymentMethod, p.method, "PAYMENT_METHOD_"))]);
    if (p?.reference) rows.push(["Payment reference", p.reference]);
    $("receipt").replaceChildren(
      el("h3", { className: "receipt-clinic", textContent: clinic }),
      el("p", { className: "receipt-title", textContent: "Receipt" }),
      el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })])),
    );
  }

  async function open(key: string): Promise<void> {
    const form = $("bk-find");
    clearProblems(form);
    try {
      const b = (await api.bookings.getBooking({ bookingId: key })).booking;
      if (b) render(b);
    } catch (err) {
      $("bk-panel").hidden = true;
      current = null;
      showProblem(form, problem(err), $("bk-find-error"));
    }
  }

  async function reload(): Promise<Booking | null> {
    if (!current) return null;
    const b = (await api.bookings.getBooking({ bookingId: current.id })).booking ?? null;
    if (b) render(b);
    return b;
  }

  $("bk-find").addEventListener("submit", (e) => {
    e.preventDefault();
    void open($<HTMLInputElement>("bk-key").value.trim());
  });

  $("bk-note-save").addEventListener("click", async () => {
    const line = $("bk-note-error");
    line.textContent = "";
    if (!current) return;
    try {
      const b = (await api.bookings.updateBookingNote({ bookingId: current.id, note: $<HTMLTextAreaElement>("bk-note").value })).booking;
      if (b) render(b);
      $("bk-note-status").textContent = "Note saved.";
    } catch (err) {
      showProblem($("bk-note-form"), problem(err), line);
    }
  });

  /** Move the booking, then wait for the saga's answer: moved, or refused with its reason. */
  async function move(to: { appointmentDate: string; doctorId: string; startTime: string }): Promise<void> {
    const out = $("rs-outcome");
    const form = $("rs-form");
    clearProblems(form);
    out.textContent = "";
    out.className = "";
    if (!current) return;
    const before = current.history.length ? current.history[current.history.length - 1].sequence : 0n;
    try {
      await api.bookings.rescheduleBooking({ bookingId: current.id, ...to, requestId: crypto.randomUUID() });
    } catch (err) {
      showProblem(form, problem(err), $("rs-error"));
      return;
    }
    out.textContent = "Moving…";
    const deadline = Date.now() + OUTCOME_WAIT_MS;
    while (Date.now() < deadline) {
      const b = await reload();
      const ev = b?.history.find(
        (e) => e.sequence > before && (e.type === EventType.BOOKING_RESCHEDULED || e.type === EventType.RESCHEDULE_REFUSED),
      );
      if (b && ev) {
        if (ev.type === EventType.BOOKING_RESCHEDULED) {
          out.textContent = `Moved: ${ev.message || `${b.appointmentDate} ${b.startTime}`}`;
          out.className = "status-CONFIRMED";
        } else {
          const reason = enumName(RejectionReason, ev.reason, "REJECTION_REASON_");
          out.textContent = `Not moved: ${words(reason)}. The booking keeps its time and token.`;
          out.title = reason;
          out.className = "status-REJECTED";
        }
        return;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    out.textContent = "No answer yet: open the booking again in a moment.";
  }

  $("rs-find").addEventListener("click", async () => {
    const line = $("rs-error");
    line.textContent = "";
    if (!current) return;
    const from = $<HTMLInputElement>("rs-date").value || ctx.today();
    const until = new Date(`${from}T00:00:00Z`);
    until.setUTCDate(until.getUTCDate() + 7);
    try {
      const slots = (
        await api.doctors.findSlots({
          serviceId: current.services[0]?.serviceId ?? "",
          dateFrom: from,
          dateTo: until.toISOString().slice(0, 10),
          limit: 12,
        })
      ).slots;
      $("rs-slots").replaceChildren(
        ...slots.map((s) => {
          const b = el("button", {
            type: "button",
            className: "secondary",
            textContent: `${s.date} ${s.startTime} · ${doctorName(s.doctorId)}`,
            title: s.doctorId,
          });
          b.dataset.slot = `${s.doctorId} ${s.date} ${s.startTime}`;
          b.addEventListener("click", () => void move({ appointmentDate: s.date, doctorId: s.doctorId, startTime: s.startTime }));
          return el("li", {}, b);
        }),
      );
      if (!slots.length) line.textContent = "No free time in the week from that date.";
    } catch (err) {
      say(line, problem(err));
    }
  });

  $("rs-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void move({
      appointmentDate: $<HTMLInputElement>("rs-date").value,
      doctorId: $<HTMLSelectElement>("rs-doctor").value,
      startTime: $<HTMLInputElement>("rs-time").value,
    });
  });

  $("pay-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("pay-form");
    clearProblems(form);
    if (!current) return;
    const amount = parseRupees($<HTMLInputElement>("pay-amount").value);
    if (amount === null) {
      $("pay-amount-error").textContent = "An amount in rupees, such as 500 or 250.50.";
      $("pay-amount").setAttribute("aria-invalid", "true");
      return;
    }
    try {
      const b = (
        await api.bookings.recordPayment({
          bookingId: current.id,
          amount: { amountMinor: amount, currency: current.finalPrice?.currency || "INR" },
          method: Number($<HTMLSelectElement>("pay-method").value),
          reference: $<HTMLInputElement>("pay-reference").value.trim(),
          requestId: crypto.randomUUID(),
        })
      ).booking;
      if (b) render(b);
      $("pay-status").textContent = `Recorded ${formatMinor(amount)}.`;
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("refund-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("refund-form");
    clearProblems(form);
    if (!current) return;
    const amount = parseRupees($<HTMLInputElement>("refund-amount").value);
    if (amount === null) {
      $("refund-amount-error").textContent = "An amount in rupees, such as 500 or 250.50.";
      return;
    }
    try {
      const b = (
        await api.bookings.refundPayment({
          bookingId: current.id,
          amount: { amountMinor: amount, currency: current.finalPrice?.currency || "INR" },
          reason: $<HTMLInputElement>("refund-reason").value.trim(),
          requestId: crypto.randomUUID(),
        })
      ).booking;
      if (b) render(b);
      $("refund-status").textContent = `Refunded ${formatMinor(amount)}.`;
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("pt-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("pt-form");
    clearProblems(form);
    $("pt-status").textContent = "";
    const patientId = current?.patient?.id;
    if (!patientId) return;
    const v = (id: string) => $<HTMLInputElement>(id).value.trim();
    const paths = ["name", ...(v("pt-phone") ? ["phone"] : []), ...(v("pt-email") ? ["email"] : [])];
    try {
      const res = await api.patients.updatePatient({
        patientId,
        updateMask: { paths },
        name: v("pt-name"),
        phone: v("pt-phone"),
        email: v("pt-email"),
      });
      $("pt-status").textContent = `Saved: ${res.patient?.name ?? ""}${res.patient?.phone ? ` · ${maskPhone(res.patient.phone)}` : ""}.`;
      await reload();
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("receipt-print").addEventListener("click", () => printOnly("receipt"));

  // The day sheet: one column per doctor with bookings that date.
  async function daySheet(date: string): Promise<void> {
    const line = $("ds-error");
    line.textContent = "";
    const all: Booking[] = [];
    try {
      let pageToken = "";
      do {
        const page = await api.bookings.listBookings({ date, pageSize: 100, pageToken });
        all.push(...page.bookings);
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (err) {
      say(line, problem(err));
      return;
    }
    const byDoctor = new Map<string, Booking[]>();
    for (const b of all) {
      if (!b.doctorId) continue;
      byDoctor.set(b.doctorId, [...(byDoctor.get(b.doctorId) ?? []), b]);
    }
    const order = (b: Booking) => `${b.startTime || "99:99"} ${String(b.token).padStart(4, "0")}`;
    $("ds-title").textContent = `Day sheet · ${date}`;
    $("ds-columns").replaceChildren(
      ...[...byDoctor.entries()].map(([id, list]) => {
        const head = el("tr", {}, ...["Time", "Token", "Patient", "Services", "Status", "Paid"].map((h) => el("th", { textContent: h })));
        const rows = list
          .sort((a, b) => order(a).localeCompare(order(b)))
          .map((b) => {
            const tr = el(
              "tr",
              {},
              el("td", { textContent: b.startTime || "–" }),
              el("td", { textContent: b.token ? String(b.token) : "–" }),
              el("td", { textContent: b.patient?.name ?? "" }),
              el("td", { textContent: b.services.map((s) => s.name).join(", ") }),
              el("td", { textContent: words(enumName(BookingStatus, b.status, "BOOKING_STATUS_").replace(/^BOOKING_STATUS_/, "")) }),
              el("td", { textContent: price(b.payment?.paid) }),
            );
            tr.dataset.booking = b.id;
            return tr;
          });
        const col = el("div", { className: "ds-doctor" }, el("h3", { textContent: doctorLabel(id), title: id }), el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
        col.dataset.doctor = id;
        return col;
      }),
    );
    if (!byDoctor.size) line.textContent = "No bookings with a doctor on that date.";
  }

  $("ds-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void daySheet($<HTMLInputElement>("ds-date").value || ctx.today());
  });
  $("ds-print").addEventListener("click", () => printOnly("daysheet"));

  return {
    dayKnown(date: string): void {
      const input = $<HTMLInputElement>("ds-date");
      if (!input.value) input.value = date;
    },
  };
}
