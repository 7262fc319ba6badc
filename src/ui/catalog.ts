/** The model catalog (models/catalog.json) and the Hub base-URL setting. */
import catalogJson from '../../models/catalog.json';
import type { FinetuneConfig } from '../train/config';
import type { ModelSource } from '../worker/api';

export interface CatalogFile {
  path: string;
  /** Another repo than the model's (e.g. a tokenizer published elsewhere). */
  repo?: string;
  size: number;
  role?: string;
}

export interface CatalogModel {
  id: string;
  name: string;
  description: string;
  repo: string;
  revision: string;
  format: 'llama2c' | 'hf';
  family: string;
  files: CatalogFile[];
  params: number;
  contextLength: number;
  memoryBytes: number;
  /** FinetuneConfig fields the page starts with for this model. */
  preset: Partial<FinetuneConfig>;
}

interface Catalog {
  defaultModel: string;
  models: CatalogModel[];
}

export const CATALOG = catalogJson as unknown as Catalog;

export function catalogModel(id: string): CatalogModel | undefined {
  return CATALOG.models.find((m) => m.id === id);
}

export function downloadSize(m: CatalogModel): number {
  return m.files.reduce((a, f) => a + f.size, 0);
}

export const HF_HUB = 'https://huggingface.co';
const BASE_URL_KEY = 'webtune.hubBaseUrl';

/** The dev/preview server's local mirror of the Hub layout (works offline). */
export function localMirror(): string {
  return new URL(`${import.meta.env.BASE_URL}hub`, location.href).href;
}

export function savedBaseUrl(): string {
  try {
    return localStorage.getItem(BASE_URL_KEY) || localMirror();
  } catch {
    return localMirror();
  }
}

export function saveBaseUrl(url: string): void {
  try {
    localStorage.setItem(BASE_URL_KEY, url);
  } catch {
    // storage may be disabled; the setting then lasts for this visit only
  }
}

export function hubModelSource(m: CatalogModel, baseUrl: string): ModelSource {
  return {
    kind: 'hub',
    baseUrl: baseUrl.replace(/\/+$/, ''),
    repo: m.repo,
    revision: m.revision,
    files: m.files.map((f) => ({ path: f.path, repo: f.repo, size: f.size, role: f.role })),
    format: m.format,
    name: m.name,
  };
}
