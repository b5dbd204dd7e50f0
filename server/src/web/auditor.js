// Filled by the auditor pages.
import {register} from './core.js';

void register;
