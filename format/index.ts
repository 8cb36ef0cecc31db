export * from './layout';
export * from './manifest';
export * from './pgp';
export * from './signed-document';
export * from './digest';
export * from './parameters';
export * from './ranges';
export * from './replica';
