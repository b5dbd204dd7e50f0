// Filled by the creatives pages.
import {register} from './core.js';

void register;
