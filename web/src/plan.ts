// The chosen doctor's week (SetWeeklyPlan with a break, SetLeave with the bookings it leaves without a
// doctor) and the day's figures for admins (AdminService.GetDaySummary). The server enforces the roles
// of the contract; the page says a refusal in words (ui.ts).
import { api, problem } from "./api.js";
import { $, clearProblems, coded, el, showProblem } from "./ui.js";
import { formatMinor } from "./money.js";
import { type Doctor, Weekday } from "../gen/clinic/v1/doctor_pb.js";
import { BookingStatus, type Money } from "../gen/clinic/v1/common_pb.js";

export interface PlanContext {
  doctor(): Doctor | undefined;
  today(): string;
}

const DAYS: [Weekday, string][] = [
  [Weekday.MONDAY, "Mon"],
  [Weekday.TUESDAY, "Tue"],
  [Weekday.WEDNESDAY, "Wed"],
  [Weekday.THURSDAY, "Thu"],
  [Weekday.FRIDAY, "Fri"],
  [Weekday.SATURDAY, "Sat"],
  [Weekday.SUNDAY, "Sun"],
];
const price = (m?: Money) => (m ? formatMinor(m.amountMinor, m.currency) : "–");

export function startPlan(ctx: PlanContext): void {
  $("plan-days").append(
    ...DAYS.map(([day, label]) => {
      const box = el("input", { type: "checkbox", value: String(day), id: `plan-day-${day}`, checked: day <= Weekday.FRIDAY });
      return el("label", { htmlFor: box.id }, box, label);
    }),
  );
  const value = (id: string) => $<HTMLInputElement>(id).value.trim();

  $("plan-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("plan-form");
    clearProblems(form);
    $("plan-status").textContent = "";
    const doctor = ctx.doctor();
    if (!doctor) return;
    const working = new Set(
      [...$("plan-days").querySelectorAll<HTMLInputElement>("input:checked")].map((b) => Number(b.value)),
    );
    const breaks = value("plan-break-start") ? [{ start: value("plan-break-start"), end: value("plan-break-end") }] : [];
    try {
      const plan = (
        await api.doctors.setWeeklyPlan({
          doctorId: doctor.id,
          effectiveFrom: value("plan-from") || ctx.today(),
          days: DAYS.map(([weekday]) =>
            working.has(weekday)
              ? { weekday, present: true, dayStart: value("plan-start"), dayEnd: value("plan-end"), breaks }
              : { weekday, present: false },
          ),
        })
      ).plan;
      $("plan-status").textContent = `Plan saved for ${doctor.name}, in force from ${plan?.effectiveFrom ?? ""}.`;
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("leave-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("leave-form");
    clearProblems(form);
    $("leave-status").textContent = "";
    $("leave-affected").replaceChildren();
    const doctor = ctx.doctor();
    if (!doctor) return;
    try {
      const res = await api.doctors.setLeave({ doctorId: doctor.id, from: value("leave-from"), to: value("leave-to"), note: value("leave-note") });
      $("leave-status").textContent = `${doctor.name} is on leave for ${res.days.length} day(s); ${res.affectedBookings.length} booking(s) to move or cancel.`;
      $("leave-affected").replaceChildren(
        ...res.affectedBookings.map((a) => {
          const li = el("li", { textContent: `${a.date}${a.startTime ? ` ${a.startTime}` : ""} · token ${a.token}`, title: a.bookingId });
          li.dataset.booking = a.bookingId;
          return li;
        }),
      );
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("sum-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("sum-form");
    clearProblems(form);
    $("sum-figures").replaceChildren();
    try {
      const s = (await api.admin.getDaySummary({ date: value("sum-date") || ctx.today() })).summary;
      if (!s) return;
      const rows: [string, string | HTMLElement][] = [
        ["Date", s.date],
        ["Bookings", String(s.bookings)],
        ...s.byStatus.map((x): [string, string | HTMLElement] => [
          "",
          coded("span", BookingStatus[x.status] ?? String(x.status), `: ${x.count}`),
        ]),
        ["Seen", String(s.seen)],
        ["No-shows", String(s.noShows)],
        ["Cancellations", `${s.cancellations} (late ${s.lateCancellations})`],
        ["Payments", price(s.payments)],
        ["Refunds", price(s.refunds)],
        ["Net", price(s.net)],
        ["Discounts", `${s.discounts} · ${price(s.discountAmount)}`],
      ];
      $("sum-figures").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", {}, v)]));
    } catch (err) {
      showProblem(form, problem(err));
    }
  });
}
