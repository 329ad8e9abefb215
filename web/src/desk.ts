// The booking desk: find or register a patient, choose services and a time with the chosen doctor,
// book, and follow the saga's events live (WatchBooking; a dropped stream is watched again and events
// already shown, by sequence, are skipped).
import { api, Code, ConnectError, problem } from "./api.js";
import { $, clearProblems, coded, el, maskPhone, showProblem, words } from "./ui.js";
import { formatMinor } from "./money.js";
import type { Doctor } from "../gen/clinic/v1/doctor_pb.js";
import {
  type Booking,
  BookingStatus,
  DiscountOutcome,
  EventType,
  type MedicalService,
  type Patient,
  RejectionReason,
  type Money,
} from "../gen/clinic/v1/common_pb.js";

export interface DeskContext {
  doctor(): Doctor | undefined;
  booked(): Promise<void>;
}

const FINAL = [BookingStatus.CONFIRMED, BookingStatus.REJECTED, BookingStatus.CANCELLED];
const name = (enumObj: Record<number, string>, value: number, prefix: string) =>
  (enumObj[value] ?? String(value)).replace(prefix, "");
const price = (m?: Money) => (m ? formatMinor(m.amountMinor, m.currency) : "–");

export function startDesk(ctx: DeskContext) {
  let patient: Patient | null = null;
  let services: MedicalService[] = [];
  let watching: AbortController | null = null;

  function choosePatient(p: Patient): void {
    patient = p;
    $("patient-chosen").textContent = `${p.name} · ${maskPhone(p.phone) || p.id}`;
    $("patient-chosen").title = p.id;
    $("book-patient-error").textContent = "";
    void loadServices();
  }

  /** A new search or registration: the patient chosen before no longer holds, nor does their booking. */
  function forgetPatient(): void {
    patient = null;
    $("patient-chosen").textContent = "none chosen";
    $("patient-chosen").removeAttribute("title");
    $("found").replaceChildren();
    forgetResult();
  }

  /** The last booking's result, hidden and no longer followed (a new booking is being made). */
  function forgetResult(): void {
    watching?.abort();
    watching = null;
    $("result").hidden = true;
    $("result-id").textContent = "";
    $("result-status").textContent = "";
    $("result-prices").replaceChildren();
    $("events").replaceChildren();
  }

  async function loadServices(): Promise<void> {
    const form = $("book-form");
    try {
      services = (await api.bookings.listServices({ gender: patient?.gender ?? 0 })).services;
    } catch (err) {
      showProblem(form, problem(err), $("services-error"));
      return;
    }
    renderServices();
  }

  function renderServices(): void {
    const doctor = ctx.doctor();
    const offered = services.filter((s) => !doctor || !doctor.serviceIds.length || doctor.serviceIds.includes(s.id));
    $("services").replaceChildren(
      ...offered.map((s) => {
        const box = el("input", { type: "checkbox", value: s.id, name: "service_ids", id: `svc-${s.id}` });
        box.addEventListener("change", total);
        return el("label", { htmlFor: box.id }, box, `${s.name} — ${price(s.price)}`);
      }),
    );
    total();
  }

  function picked(): string[] {
    return [...$("services").querySelectorAll<HTMLInputElement>("input:checked")].map((b) => b.value);
  }

  function total(): void {
    const ids = picked();
    const sum = services.filter((s) => ids.includes(s.id)).reduce((a, s) => a + (s.price?.amountMinor ?? 0n), 0n);
    $("book-total").textContent = ids.length ? `Before any discount: ${formatMinor(sum)}` : "";
  }

  $("find-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("find-form");
    clearProblems(form);
    forgetPatient();
    const phone = $<HTMLInputElement>("find-phone").value.trim();
    try {
      const found = (await api.patients.findPatients({ phone })).patients;
      $("found").replaceChildren(
        ...found.map((p) => {
          const b = el("button", { type: "button", className: "secondary", textContent: `Choose ${p.name} (${maskPhone(p.phone)})`, title: p.id });
          b.addEventListener("click", () => choosePatient(p));
          return el("li", {}, b);
        }),
      );
      if (!found.length) $("find-error").textContent = "No patient with that phone: register them below.";
      if (found.length === 1) choosePatient(found[0]);
    } catch (err) {
      showProblem(form, problem(err), $("find-error"));
    }
  });

  $("register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $<HTMLFormElement>("register-form");
    clearProblems(form);
    forgetPatient();
    const v = (id: string) => $<HTMLInputElement>(id).value.trim();
    try {
      const res = await api.patients.registerPatient({
        name: v("reg-name"),
        phone: v("reg-phone"),
        email: v("reg-email"),
        gender: Number(v("reg-gender")),
        dateOfBirth: v("reg-dob"),
      });
      if (res.patient) choosePatient(res.patient);
      const note = res.created ? "Registered." : "Already registered with that phone: chosen.";
      form.querySelector<HTMLElement>(".form-error")!.textContent = "";
      $("found").replaceChildren(el("li", { textContent: note }));
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  $("book-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("book-form");
    clearProblems(form);
    if (!patient) {
      $("book-patient-error").textContent = "Find or register the patient first.";
      return;
    }
    forgetResult(); // whatever this attempt's outcome, the previous booking's is not it
    const doctor = ctx.doctor();
    const button = $<HTMLButtonElement>("book");
    button.disabled = true;
    try {
      const res = await api.bookings.createBooking({
        patient: { id: patient.id },
        serviceIds: picked(),
        doctorId: doctor?.id ?? "",
        startTime: $<HTMLSelectElement>("book-time").value,
        requestId: crypto.randomUUID(), // one click, one booking, even if the call is retried
      });
      if (res.booking) follow(res.booking);
    } catch (err) {
      showProblem(form, problem(err));
    } finally {
      button.disabled = false;
    }
  });

  function showBooking(b: Booking): void {
    $("result").hidden = false;
    $("result-id").textContent = b.id;
    const status = name(BookingStatus, b.status, "");
    const out = $("result-status");
    out.textContent = words(status) + (b.waitlistPosition ? ` (waitlist position ${b.waitlistPosition})` : "");
    out.title = status;
    out.className = `status-${status}`;
    const doctor = ctx.doctor();
    const rows: [string, string | HTMLElement][] = [
      ["Patient", b.patient?.name || b.patient?.id || ""],
    ];
    if (b.doctorId) rows.push(["Doctor", doctor?.id === b.doctorId ? doctor.name : b.doctorId]);
    rows.push(
      ["Services", b.services.map((s) => `${s.name} (${price(s.price)})`).join(", ")],
      ["Date", b.appointmentDate + (b.startTime ? ` at ${b.startTime} for ${b.durationMinutes} min` : "")],
    );
    if (b.token) rows.push(["Token", String(b.token)]);
    rows.push(["Base price", price(b.basePrice)]);
    if (b.discount?.outcome) {
      const outcome = name(DiscountOutcome, b.discount.outcome, "");
      const amount = b.discount.percent ? ` ${b.discount.percent}% -${price(b.discount.amount)}` : "";
      rows.push(["Discount", coded("span", outcome, amount)]);
    }
    rows.push(["Final price", price(b.finalPrice)]);
    if (b.rejectionReason) rows.push(["Reason", coded("span", name(RejectionReason, b.rejectionReason, ""))]);
    if (b.statusMessage) rows.push(["", b.statusMessage]);
    $("result-prices").replaceChildren(
      ...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", {}, v)]),
    );
  }

  function follow(b: Booking): void {
    watching?.abort();
    const abort = (watching = new AbortController());
    $("events").replaceChildren();
    showBooking(b);
    void watchEvents(b.id, abort.signal);
  }

  async function watchEvents(bookingId: string, signal: AbortSignal): Promise<void> {
    let seen = 0n;
    let backoff = 250;
    while (!signal.aborted) {
      try {
        for await (const res of api.notifications.watchBooking({ bookingId }, { signal })) {
          const ev = res.event;
          if (!ev || ev.sequence <= seen) continue; // a replay after a reconnect
          seen = ev.sequence;
          backoff = 250;
          const li = coded("li", name(EventType, ev.type, ""), ev.message ? ` — ${ev.message}` : "");
          li.dataset.sequence = String(ev.sequence);
          $("events").append(li);
        }
        // The stream ends once the booking is final: show its prices as they stand.
        const booking = (await api.bookings.getBooking({ bookingId })).booking;
        if (booking && !signal.aborted) {
          showBooking(booking);
          if (FINAL.includes(booking.status)) {
            await ctx.booked();
            return;
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) return;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 4000);
    }
  }

  return {
    doctorChanged(): void {
      if (patient || services.length) renderServices();
      else void loadServices();
    },
    freeTimes(times: string[]): void {
      const select = $<HTMLSelectElement>("book-time");
      const keep = select.value;
      select.replaceChildren(
        el("option", { value: "", textContent: "Any (a token, no fixed time)" }),
        ...times.map((t) => el("option", { value: t, textContent: t })),
      );
      if (times.includes(keep)) select.value = keep;
    },
  };
}
