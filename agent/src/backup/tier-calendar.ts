/** The calendar is the contract between the agent (which tiers each dump) and the verifier (which counts the copies each tier promises). */
export { tierFor } from '../../../format/tier-calendar';
