export { signUp, signUpInput, checkCredentials, type RequestMeta } from "./service";
export { MIN_PASSWORD_LENGTH } from "./password";
