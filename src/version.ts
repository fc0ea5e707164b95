/** The version of rep, recorded in every experiment. */
export const VERSION = "0.1.0";
