// One grpc-web transport to the page's own origin (Envoy), one client per public service, and the
// two things every caller of the API needs: the token on each call and errors in words.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "../gen/clinic/v1/admin_pb.js";
import { BookingService } from "../gen/clinic/v1/booking_pb.js";
import { DoctorService } from "../gen/clinic/v1/doctor_pb.js";
import { FrontDeskService } from "../gen/clinic/v1/frontdesk_pb.js";
import { NotificationService } from "../gen/clinic/v1/notification_pb.js";
import { PatientService } from "../gen/clinic/v1/patient_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { session } from "./session.js";

const withToken: Interceptor = (next) => async (req) => {
  const token = session.token();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(req);
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Unauthenticated) session.rejected(e.rawMessage);
    throw e;
  }
};

const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [withToken] });

export const api = {
  admin: createClient(AdminService, transport),
  bookings: createClient(BookingService, transport),
  doctors: createClient(DoctorService, transport),
  desk: createClient(FrontDeskService, transport),
  notifications: createClient(NotificationService, transport),
  patients: createClient(PatientService, transport),
};

export interface Problem {
  message: string;
  fields: Map<string, string>; // BadRequest field name -> description
  code: Code;
  raw: string; // the server's own words and code, for a tooltip
}

export const WORDS: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "Not signed in, or the token is no longer valid: sign in again.",
  [Code.PermissionDenied]: "This token's role may not do that (the front desk needs a staff token).",
  [Code.Unavailable]: "The clinic's servers cannot be reached just now; try again in a moment.",
  [Code.ResourceExhausted]: "Too many requests from this desk; wait a second and try again.",
  [Code.DeadlineExceeded]: "The server took too long to answer; try again.",
};

/** An API error in words, with the request fields it names (google.rpc.BadRequest). */
export function problem(err: unknown): Problem {
  const e = ConnectError.from(err);
  const fields = new Map<string, string>();
  for (const bad of e.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields.set(v.field, v.description);
  }
  const words = WORDS[e.code];
  const message = words ?? e.rawMessage;
  const grpcName = Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(); // FAILED_PRECONDITION
  const raw = `${grpcName}: ${e.rawMessage}`;
  return { message: message || `Request failed (${Code[e.code]})`, fields, code: e.code, raw };
}

export { Code, ConnectError };
