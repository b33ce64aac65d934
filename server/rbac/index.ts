export { PERMISSIONS, ROLES, can, permissionsOf, rolesWith, type Permission } from "./permissions";
