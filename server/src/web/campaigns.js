// Filled by the campaigns pages.
import {register} from './core.js';

void register;
