// Wiring: sign-in, the doctor chosen (kept in the URL's #doctor=), the doctor's day, the queue board
// and the booking desk.
import { api, Code, problem, WORDS } from "./api.js";
import { session } from "./session.js";
import { $, clearProblems, el, say, showProblem } from "./ui.js";
import { QueueWatch, byState, VisitState } from "./board.js";
import { startDesk, type DeskContext } from "./desk.js";
import { startWeek } from "./week.js";
import { startPlan } from "./plan.js";
import { doctorLabel, startDoctorEdit } from "./doctor.js";
import { type Doctor, HoursSource } from "../gen/clinic/v1/doctor_pb.js";
import { type Booking, BookingStatus } from "../gen/clinic/v1/common_pb.js";
import type { Visit } from "../gen/clinic/v1/frontdesk_pb.js";

let watch: QueueWatch | null = null;
let doctors: Doctor[] = [];
let day = ""; // the clinic's today, as GetDoctorDay reports it
const bookings = new Map<string, Booking>(); // today's bookings of the chosen doctor, by id

function showSignIn(reason = ""): void {
  watch?.stop();
  watch = null;
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-reason").textContent = reason;
  $<HTMLTextAreaElement>("token").value = "";
  $("token").focus();
}

function showApp(): void {
  const claims = session.claims();
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("who-text").textContent = claims ? `Signed in as ${claims.sub} (${claims.role})` : "";
  // A patient's token may not run the desk: say so once, in the words docs/frontdesk.md promises,
  // instead of the first refused call's field name.
  $("role-notice").textContent = claims?.role === "patient" ? (WORDS[Code.PermissionDenied] ?? "") : "";
  void loadDoctors();
}

async function loadDoctors(): Promise<void> {
  const form = $("doctor-form");
  clearProblems(form);
  try {
    // Retired doctors too (an admin may bring one back), marked and listed last.
    const all = (await api.doctors.listDoctors({ includeRetired: true })).doctors;
    doctors = [...all.filter((d) => !d.retired), ...all.filter((d) => d.retired)];
  } catch (err) {
    showProblem(form, problem(err), $("doctor-error"));
    return;
  }
  const select = renderDoctors();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("doctor");
  if (wanted && doctors.some((d) => d.id === wanted)) select.value = wanted;
  if (!doctors.length) $("doctor-error").textContent = "No doctors yet: an admin adds them with `clinic doctor add`.";
  chooseDoctor(select.value);
}

function renderDoctors(): HTMLSelectElement {
  const select = $<HTMLSelectElement>("doctor");
  const keep = select.value;
  select.replaceChildren(
    ...doctors.map((d) => {
      const option = el("option", { value: d.id, textContent: doctorLabel(d), title: `${d.code} · ${d.id}` });
      if (d.retired) option.dataset.retired = "true";
      return option;
    }),
  );
  if (keep && doctors.some((d) => d.id === keep)) select.value = keep;
  return select;
}

function chosen(): Doctor | undefined {
  return doctors.find((d) => d.id === $<HTMLSelectElement>("doctor").value);
}

function chooseDoctor(id: string): void {
  watch?.stop();
  bookings.clear();
  renderBoard([]);
  if (!id) return;
  history.replaceState(null, "", `#doctor=${encodeURIComponent(id)}`);
  $("board-doctor").textContent = `· ${chosen()?.name ?? ""}`;
  const current = (watch = new QueueWatch(id, {
    render(visits) {
      renderBoard(visits);
      Object.assign($("live").dataset, { snapshots: current.snapshots, changes: current.changes });
    },
    status(text, live) {
      $("live").textContent = text;
      $("live").classList.toggle("ok", live);
    },
  }));
  watch.start();
  void refreshDay().then(refreshBookings);
  desk.doctorChanged();
  doctorEdit.doctorChanged();
}

/** The chosen doctor's day: today (which the desk books), or the date picked in "Day of". */
async function refreshDay(): Promise<void> {
  const doctor = chosen();
  if (!doctor) return;
  const picked = $<HTMLInputElement>("day-pick").value;
  const form = $("doctor-form");
  clearProblems(form);
  try {
    const d = (await api.doctors.getDoctorDay({ doctorId: doctor.id, date: day && picked !== day ? picked : "" })).day;
    if (!d) return;
    const today = !day || !picked || picked === day;
    if (today) {
      day = d.date;
      week.dayKnown(d.date);
      if (!picked) $<HTMLInputElement>("day-pick").value = d.date;
    }
    $("day-date").textContent = d.date;
    $("day-capacity").textContent = String(d.capacity);
    $("day-booked").textContent = String(d.booked);
    $("day-remaining").textContent = String(d.remaining);
    $("day-waitlisted").textContent = String(d.waitlisted);
    const hours = `Hours ${d.dayStart}–${d.dayEnd}`;
    const when = today ? "today" : "that day";
    const absent = d.onLeave ? `On leave ${when}` : `Absent ${when}`;
    const note = $("day-note");
    note.textContent = d.present ? `${hours}${d.note ? ` · ${d.note}` : ""}` : `${absent}${d.note ? `: ${d.note}` : ""}`;
    note.dataset.state = d.present ? "present" : d.onLeave ? "leave" : "absent";
    if (doctor.retired) {
      note.textContent = "Retired: takes no new bookings or moves";
      note.dataset.state = "retired";
    }
    note.title = `HOURS_SOURCE_${HoursSource[d.hoursSource] ?? d.hoursSource}`; // where the hours came from
    const breaks = d.present ? d.breaks.map((b) => `${b.start}–${b.end}`) : [];
    $("day-breaks").textContent = d.present ? (breaks.length ? `Breaks ${breaks.join(", ")}` : "No breaks") : "";
    $("free-times").replaceChildren(...(d.freeTimes.length ? d.freeTimes.map((t) => el("span", { textContent: t })) : ["none"]));
    if (today) desk.freeTimes(d.freeTimes); // the desk books today
  } catch (err) {
    showProblem(form, problem(err), $("doctor-error"));
  }
}

async function refreshBookings(): Promise<void> {
  const doctor = chosen();
  if (!doctor || !day || session.claims()?.role === "patient") return; // a patient lists only their own
  try {
    let pageToken = "";
    do {
      const page = await api.bookings.listBookings({ date: day, doctorId: doctor.id, pageSize: 100, pageToken });
      for (const b of page.bookings) bookings.set(b.id, b);
      pageToken = page.nextPageToken;
    } while (pageToken);
  } catch (err) {
    say($("checkin-error"), problem(err));
  }
  renderBoard([...(watch?.visits.values() ?? [])]);
}

/** The patient's name on a line of its own, the token and time under it (the id in a tooltip). */
function who(v: { bookingId: string; patientId: string; token?: number }, position = ""): HTMLElement {
  const b = bookings.get(v.bookingId);
  const token = v.token || b?.token;
  const details = [token ? `token ${token}` : "", b?.startTime ?? ""].filter(Boolean).join(" · ");
  const name = el("span", { className: "who", textContent: b?.patient?.name || "Patient", title: v.patientId });
  const line = el("div", { className: "name" });
  if (position) line.append(el("span", { className: "pos", textContent: position }));
  line.append(name);
  return el("div", {}, line, details ? el("div", { className: "details", textContent: details }) : "");
}

function action(label: string, run: () => Promise<unknown>, errorLine: HTMLElement): HTMLButtonElement {
  const button = el("button", { type: "button", textContent: label, className: "secondary" });
  button.addEventListener("click", async () => {
    errorLine.textContent = "";
    button.disabled = true;
    try {
      await run();
    } catch (err) {
      say(errorLine, problem(err));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function visitItem(v: Visit, withPosition: boolean, ...buttons: [string, () => Promise<unknown>][]): HTMLLIElement {
  const error = el("p", { className: "error" });
  const li = el("li", {}, who(v, withPosition ? `${v.position}.` : ""));
  li.dataset.booking = v.bookingId;
  if (v.state === VisitState.NO_SHOW) li.append(el("div", { className: "details", textContent: "No-show" }));
  if (buttons.length) li.append(el("div", { className: "acts" }, ...buttons.map(([l, r]) => action(l, r, error))));
  li.append(error);
  return li;
}

let lastSeen = new Set<string>();

function renderBoard(visits: Visit[]): void {
  const all = visits.map((v) => v.bookingId);
  if (all.some((id) => !bookings.has(id) && !lastSeen.has(id))) void refreshBookings();
  lastSeen = new Set(all);
  const noShow = (v: Visit) => api.desk.markNoShow({ bookingId: v.bookingId });
  $("waiting").replaceChildren(
    ...byState(visits, VisitState.WAITING).map((v) => visitItem(v, true, ["No-show", () => noShow(v)])),
  );
  $("consulting").replaceChildren(
    ...byState(visits, VisitState.IN_CONSULTATION).map((v) =>
      visitItem(v, false, ["Done", () => api.desk.completeVisit({ bookingId: v.bookingId })], ["No-show", () => noShow(v)]),
    ),
  );
  $("done").replaceChildren(...byState(visits, VisitState.DONE, VisitState.NO_SHOW).map((v) => visitItem(v, false)));
  const here = new Set(all);
  const expected = [...bookings.values()]
    .filter((b) => b.status === BookingStatus.CONFIRMED && !here.has(b.id))
    .sort((a, b) => a.token - b.token);
  $("expected").replaceChildren(
    ...expected.map((b) => {
      const v = { bookingId: b.id, patientId: b.patient?.id ?? "", token: b.token };
      const error = el("p", { className: "error" });
      const li = el("li", {}, who(v), el("div", { className: "acts" }, action("Check in", () => checkIn(b.id), error)), error);
      li.dataset.booking = b.id;
      return li;
    }),
  );
}

async function checkIn(bookingId: string): Promise<void> {
  await api.desk.checkIn({ bookingId });
}

$("checkin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = $("checkin-form");
  clearProblems(form);
  const input = $<HTMLInputElement>("checkin-booking");
  try {
    await checkIn(input.value.trim());
    input.value = "";
  } catch (err) {
    showProblem(form, problem(err), $("checkin-error"));
  }
});

$("call-next").addEventListener("click", async () => {
  $("call-error").textContent = "";
  const doctor = chosen();
  if (!doctor) return;
  try {
    await api.desk.callNext({ doctorId: doctor.id });
  } catch (err) {
    const p = problem(err);
    // The server names the queue by the doctor's id; the desk knows the doctor by name.
    if (p.code === Code.FailedPrecondition) p.message = `Nobody is waiting for ${doctor.name}.`;
    say($("call-error"), p);
  }
});

$("doctor").addEventListener("change", (e) => chooseDoctor((e.target as HTMLSelectElement).value));
$("day-pick").addEventListener("change", () => void refreshDay());

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const error = session.signIn($<HTMLTextAreaElement>("token").value);
  $("token-error").textContent = error ?? "";
  $("token").setAttribute("aria-invalid", String(Boolean(error)));
  if (!error) showApp();
});

$("sign-out").addEventListener("click", () => session.signOut());
session.onEnd((reason) => showSignIn(reason));

const context: DeskContext = {
  doctor: chosen,
  booked: async () => {
    await refreshDay();
    await refreshBookings();
  },
};
const desk = startDesk(context);
const week = startWeek({ doctors: () => doctors, today: () => day });
startPlan({ doctor: chosen, today: () => day });
const doctorEdit = startDoctorEdit({
  doctor: chosen,
  updated(saved) {
    doctors = doctors.map((d) => (d.id === saved.id ? saved : d));
    renderDoctors();
    $("board-doctor").textContent = `· ${saved.name}`;
    desk.doctorChanged(); // the services it performs may have changed
    void refreshDay();
  },
});

if (session.resume()) showApp();
else if ($("signin").hidden) showSignIn();
