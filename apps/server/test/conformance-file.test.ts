import { describeConformance } from './conformance.js';

describeConformance('file');
