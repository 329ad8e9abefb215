// The chosen doctor's registry entry, edited by an admin (DoctorService.UpdateDoctor): name, specialty,
// services performed, usual hours, tokens a day, retired. Only the fields changed on the form are
// sent (update_mask); the server enforces the admin role and says a refusal, shown in words (ui.ts).
import { api, problem } from "./api.js";
import { $, clearProblems, el, showProblem } from "./ui.js";
import type { Doctor } from "../gen/clinic/v1/doctor_pb.js";
import type { MedicalService } from "../gen/clinic/v1/common_pb.js";

export interface DoctorEditContext {
  doctor(): Doctor | undefined;
  updated(doctor: Doctor): void;
}

/** A doctor as the lists show them: a retired one is marked. */
export function doctorLabel(d: Doctor): string {
  return `${d.specialty ? `${d.name} · ${d.specialty}` : d.name}${d.retired ? " · retired" : ""}`;
}

export function startDoctorEdit(ctx: DoctorEditContext) {
  let services: MedicalService[] = [];
  const input = (id: string) => $<HTMLInputElement>(id);

  function picked(): string[] {
    return [...$("dr-services").querySelectorAll<HTMLInputElement>("input:checked")].map((b) => b.value);
  }

  function fill(): void {
    const d = ctx.doctor();
    $("dr-status").textContent = "";
    clearProblems($("dr-form"));
    if (!d) return;
    input("dr-name").value = d.name;
    input("dr-specialty").value = d.specialty;
    input("dr-start").value = d.dayStart;
    input("dr-end").value = d.dayEnd;
    input("dr-capacity").value = String(d.dailyCapacity);
    input("dr-retired").checked = d.retired;
    renderServices(d.serviceIds);
  }

  /** The catalog's services as boxes, `checked` ticked (a service the catalog no longer has, by its id). */
  function renderServices(checked: string[]): void {
    const known = new Set(services.map((s) => s.id));
    const all = [...services, ...checked.filter((id) => !known.has(id)).map((id) => ({ id, name: id }) as MedicalService)];
    $("dr-services").replaceChildren(
      el("legend", { textContent: "Services performed" }),
      ...all.map((s) => {
        const box = el("input", { type: "checkbox", value: s.id, id: `dr-svc-${s.id}`, checked: checked.includes(s.id) });
        return el("label", { htmlFor: box.id, title: s.id }, box, s.name);
      }),
    );
  }

  let loaded = false;
  /** The catalog, read once a doctor is chosen (so after sign-in: the page asks for nothing it is refused). */
  async function loadServices(): Promise<void> {
    loaded = true;
    try {
      services = (await api.bookings.listServices({})).services;
    } catch {
      loaded = false; // read again at the next doctor chosen; the desk's own list says why it failed
    }
    renderServices(picked()); // names for the boxes, keeping what was ticked meanwhile
  }

  $("dr-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("dr-form");
    clearProblems(form);
    $("dr-status").textContent = "";
    const d = ctx.doctor();
    if (!d) return;
    const req = {
      doctorId: d.id,
      name: input("dr-name").value.trim(),
      specialty: input("dr-specialty").value.trim(),
      serviceIds: picked(),
      dayStart: input("dr-start").value,
      dayEnd: input("dr-end").value,
      dailyCapacity: Number(input("dr-capacity").value || 0),
      retired: input("dr-retired").checked,
    };
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));
    const paths = [
      req.name !== d.name && "name",
      req.specialty !== d.specialty && "specialty",
      !same(req.serviceIds, d.serviceIds) && "service_ids",
      req.dayStart !== d.dayStart && "day_start",
      req.dayEnd !== d.dayEnd && "day_end",
      req.dailyCapacity !== d.dailyCapacity && "daily_capacity",
      req.retired !== d.retired && "retired",
    ].filter((p): p is string => Boolean(p));
    if (!paths.length) {
      $("dr-status").textContent = "Nothing changed.";
      return;
    }
    try {
      const saved = (await api.doctors.updateDoctor({ ...req, updateMask: { paths } })).doctor;
      if (!saved) return;
      ctx.updated(saved);
      $("dr-status").textContent = saved.retired
        ? `Saved: ${saved.name} is retired and takes no new bookings.`
        : `Saved: ${saved.name}.`;
    } catch (err) {
      showProblem(form, problem(err));
    }
  });

  return {
    doctorChanged(): void {
      fill();
      if (!loaded) void loadServices();
    },
  };
}
