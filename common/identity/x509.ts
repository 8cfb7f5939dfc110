// The one place that loads @peculiar/x509 (the control plane's CA and tests; the node proxy does
// without it: der.ts): it needs a Reflect metadata polyfill before it loads
// (its tsyringe dependency throws otherwise) and a WebCrypto provider (node:crypto's). Import the
// library from here, never directly.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

// The library's typings name the DOM's `Crypto`, which this project's lib settings do not declare.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export const subtle = webcrypto.subtle;
