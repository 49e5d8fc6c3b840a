import { describeConformance } from './conformance.js';

describeConformance('memory');
