// The queue board: WatchQueue for one doctor's queue today, snapshot then changes in order. A stream
// that drops (Envoy or frontdesk_svc restarted) is opened again with after_sequence = the last change
// applied, so the server replays what was missed and nothing is applied twice.
import { api, Code, ConnectError, problem } from "./api.js";
import { type Visit, VisitState } from "../gen/clinic/v1/frontdesk_pb.js";

export interface BoardView {
  render(visits: Visit[]): void;
  status(text: string, live: boolean): void;
}

export class QueueWatch {
  readonly visits = new Map<string, Visit>();
  sequence = 0n;
  snapshots = 0; // how many snapshots arrived: 1 for a watch resumed by sequence, whatever dropped
  changes = 0; // changes applied (a replayed one is not counted twice)
  private abort = new AbortController();

  constructor(
    readonly doctorId: string,
    private readonly view: BoardView,
  ) {}

  start(): void {
    void this.run(this.abort.signal);
  }

  stop(): void {
    this.abort.abort();
  }

  /** Apply one item; false when it was already applied (a replay) and is ignored. */
  apply(item: { sequence: bigint; snapshot?: { visits: Visit[] }; change?: { visit?: Visit } }): boolean {
    if (item.snapshot) {
      this.visits.clear();
      for (const v of item.snapshot.visits) this.visits.set(v.bookingId, v);
      this.sequence = item.sequence;
      this.snapshots += 1;
      return true;
    }
    if (item.sequence <= this.sequence || !item.change?.visit) return false;
    this.visits.set(item.change.visit.bookingId, item.change.visit);
    this.sequence = item.sequence;
    this.changes += 1;
    return true;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let backoff = 250;
    while (!signal.aborted) {
      try {
        this.view.status(this.sequence ? "Reconnecting…" : "Connecting…", false);
        const stream = api.desk.watchQueue(
          { doctorId: this.doctorId, afterSequence: this.sequence },
          { signal },
        );
        for await (const res of stream) {
          backoff = 250;
          const item = {
            sequence: res.sequence,
            snapshot: res.item.case === "snapshot" ? res.item.value : undefined,
            change: res.item.case === "change" ? res.item.value : undefined,
          };
          if (this.apply(item)) this.view.render([...this.visits.values()]);
          this.view.status(`Live · change ${this.sequence}`, true);
        }
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) {
          this.view.status(problem(e).message, false);
          return;
        }
      }
      if (signal.aborted) return;
      this.view.status("Connection lost; reconnecting…", false);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 4000);
    }
  }
}

export const byState = (visits: Visit[], ...states: VisitState[]) =>
  visits.filter((v) => states.includes(v.state)).sort((a, b) => a.position - b.position);

export { VisitState };
