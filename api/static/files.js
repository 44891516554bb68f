// The files a user picks or drops, as posters {file, name}; a folder's files carry their path.

// Names starting with "." (.DS_Store, ._poster.jpg) are never posters; `posterq label` skips them too.
const hidden = (name) => name.split("/").some((part) => part.startsWith("."));
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Posters from a FileList (a file input: plain files, or a folder's files with their paths). */
export function fromFileList(list) {
  const posters = [...list].map((file) => ({ file, name: file.webkitRelativePath || file.name }));
  return posters.filter((poster) => !hidden(poster.name));
}

function readFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

function readBatch(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry, prefix, posters) {
  const name = prefix + entry.name;
  if (entry.isFile) {
    posters.push({ file: await readFile(entry), name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    const children = [];
    // readEntries answers in batches (100 in Chromium) until it answers an empty one.
    for (let batch = await readBatch(reader); batch.length; batch = await readBatch(reader)) children.push(...batch);
    children.sort(byName);
    for (const child of children) await walk(child, `${name}/`, posters);
  }
}

/** Posters from a drop: files, and folders walked recursively. */
export async function fromDrop(dataTransfer) {
  // Entries must be taken before the first await: the drop's items are gone after the event.
  const entries = [...dataTransfer.items]
    .filter((item) => item.kind === "file")
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (!entries.length || entries.some((entry) => !entry)) return fromFileList(dataTransfer.files);
  const posters = [];
  for (const entry of entries) await walk(entry, "", posters);
  return posters.filter((poster) => !hidden(poster.name));
}
