// The control plane's subcommands: control, apply, get, delete, namespace.
export { applyCommand } from './cmd/apply';
export { controlCommand, controlCommandWith } from './cmd/control';
export { deleteCommand } from './cmd/delete';
export { getCommand } from './cmd/get';
export { namespaceCommand } from './cmd/namespace';
