// The resource model in one import: types of every kind, validation, selectors, mesh labels.
export * from './authorization-policy';
export * from './fields';
export * from './gateway';
export * from './http-route';
export * from './kinds';
export * from './labels';
export * from './meta';
export * from './namespace';
export * from './peer-authentication';
export * from './selectors';
export * from './service';
export * from './validate';
export * from './validation';
export * from './workload';
