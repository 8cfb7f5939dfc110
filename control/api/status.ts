// Error bodies in the shape of Kubernetes' Status object, so tools and people recognise them.
import type { ValidationError } from '../resources/validation';

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  status: 'Failure';
  code: number;
  reason: string;
  message: string;
  details?: { errors: { resource: string; issues: { path: string; message: string }[] }[] };
}

export function statusBody(code: number, reason: string, message: string, errors?: readonly ValidationError[]): StatusBody {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
  if (errors?.length) body.details = { errors: errors.map((e) => ({ resource: e.resource, issues: e.issues.map((i) => ({ ...i })) })) };
  return body;
}
