// Every workflow the worker registers.
export { stackCheck } from './stackCheck';
