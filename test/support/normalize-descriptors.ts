import { clone } from '@bufbuild/protobuf';
import { type DescriptorProto, type FieldDescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';

/**
 * Fills in what protoc always writes but descriptor.proto leaves optional, so that
 * @bufbuild/protobuf's createFileRegistry reads descriptors from any server the way Go's
 * protodesc (under grpcurl) does. Descriptors that grpc-js's proto-loader builds (the health
 * service's, here) need both fixes:
 *
 * - Relative type names ("HealthCheckResponse") become fully-qualified (".pkg.Type"):
 *   descriptor.proto allows them ("C++-like scoping rules are used to find the type"), but
 *   createFileRegistry only accepts fully-qualified names.
 * - A missing json_name becomes the lowerCamelCase protoc would give: createFileRegistry
 *   takes json_name as is, so an empty one would make every protojson key "".
 *
 * Strictness is kept: a name is looked up only in its own file and the files that file lists
 * in `dependency`, so a missing or undeclared import still leaves it unresolved and
 * createFileRegistry still rejects it. (Public re-exports of imports are not followed: no
 * descriptor served here uses them.)
 */
export function normalizeDescriptors(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((file) => [file.name, file]));
  return files.map((original) => {
    const visible = new Set<string>();
    for (const file of [original, ...original.dependency.map((name) => byName.get(name))]) {
      if (file) declaredTypes(file.messageType, file.enumType, packageScope(file), visible);
    }
    // Innermost scope first, then each enclosing one. (protoc settles on the first scope that
    // holds the name's first component; trying whole names is the same for every file here.)
    const resolve = (name: string, scope: string): string => {
      if (name === '' || name.startsWith('.')) return name;
      for (let outer = scope; ; outer = outer.slice(0, outer.lastIndexOf('.'))) {
        if (visible.has(`${outer}.${name}`)) return `${outer}.${name}`;
        if (outer === '') return name;
      }
    };
    const fixFields = (fields: FieldDescriptorProto[], scope: string) => {
      for (const field of fields) {
        field.typeName = resolve(field.typeName, scope);
        field.extendee = resolve(field.extendee, scope);
        field.jsonName ||= jsonName(field.name);
      }
    };
    const fixMessages = (messages: DescriptorProto[], scope: string) => {
      for (const message of messages) {
        const inner = `${scope}.${message.name}`;
        fixFields([...message.field, ...message.extension], inner);
        fixMessages(message.nestedType, inner);
      }
    };

    const file = clone(FileDescriptorProtoSchema, original);
    const scope = packageScope(file);
    fixMessages(file.messageType, scope);
    fixFields(file.extension, scope);
    for (const service of file.service) {
      for (const method of service.method) {
        method.inputType = resolve(method.inputType, `${scope}.${service.name}`);
        method.outputType = resolve(method.outputType, `${scope}.${service.name}`);
      }
    }
    return file;
  });
}

function packageScope(file: FileDescriptorProto): string {
  return file.package ? `.${file.package}` : '';
}

function declaredTypes(messages: DescriptorProto[], enums: { name: string }[], scope: string, into: Set<string>): void {
  for (const e of enums) into.add(`${scope}.${e.name}`);
  for (const message of messages) {
    into.add(`${scope}.${message.name}`);
    declaredTypes(message.nestedType, message.enumType, `${scope}.${message.name}`, into);
  }
}

/** protoc's ToJsonName: drop each underscore and capitalise the letter after it. */
function jsonName(name: string): string {
  return name.replace(/_+(.?)/g, (_, next: string) => next.toUpperCase());
}
