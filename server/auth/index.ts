export { signUp, signUpInput, checkCredentials, type RequestMeta } from "./service";
export { MIN_PASSWORD_LENGTH } from "./password";
export {
  accountSecurity, changePassword, changePasswordInput, signInMethods, signOutOtherSessions, signOutOtherSessionsInput, unlinkAccount, unlinkAccountInput, type LinkedAccount,
} from "./account";
export { RESET_LINK_INVALID, createPasswordResetLink, resetLinkUsable, resetPassword, resetPasswordInput } from "./reset";
