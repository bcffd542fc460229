using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace PatroniYarp.Configuration;

/// <summary>Flattens one YAML document into configuration keys; errors name the file, line and column.</summary>
internal static class YamlConfigurationFileParser
{
    private const string NullTag = "tag:yaml.org,2002:null";

    /// <exception cref="FormatException">The text is not YAML, or not a mapping at the top level.</exception>
    public static Dictionary<string, string?> Parse(Stream stream, string fileName)
    {
        var parser = new PositionTrackingParser(new Parser(new StreamReader(stream)));
        var yaml = new YamlStream();
        try
        {
            yaml.Load(parser);
        }
        catch (YamlException ex)
        {
            throw Error(fileName, ex.Start, ex.Message, ex);
        }
        catch (InvalidOperationException ex)
        {
            // YamlDotNet's scanner throws this, without a position, on some malformed input (e.g. an unclosed "[").
            throw Error(fileName, parser.LastEnd, "malformed YAML after this point", ex);
        }

        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (yaml.Documents.Count > 1)
        {
            throw Error(fileName, yaml.Documents[1].RootNode.Start, "only one YAML document is supported", null);
        }
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is YamlScalarNode root && IsNull(root))
        {
            return data;
        }
        if (yaml.Documents[0].RootNode is not YamlMappingNode mapping)
        {
            throw Error(fileName, yaml.Documents[0].RootNode.Start, "the top level must be a mapping of keys to values", null);
        }
        new Flattener(fileName, data).Visit(mapping, path: null);
        return data;
    }

    private static bool IsNull(YamlScalarNode scalar) =>
        scalar.Tag is { IsEmpty: false, IsNonSpecific: false } tag && tag.Value == NullTag
        || scalar.Style == ScalarStyle.Plain && scalar.Tag.IsEmpty && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static FormatException Error(string fileName, Mark mark, string message, Exception? inner) =>
        new($"{fileName}: line {mark.Line}, column {mark.Column}: {message}", inner);

    /// <summary>
    /// Turns the document into keys. Aliases (<c>*name</c>) make YamlDotNet share one node in several places, so the
    /// depth the parser bounded can grow here: an alias inside the node it names is a cycle, and aliases of aliases
    /// multiply ("billion laughs"). Both are refused, not followed until the stack or the memory runs out.
    /// </summary>
    private sealed class Flattener(string fileName, Dictionary<string, string?> data)
    {
        /// <summary>Values a document may expand to; a real configuration has a few hundred.</summary>
        public const int MaxValues = 100_000;

        private int _depth;

        public void Visit(YamlNode node, string? path)
        {
            if (++_depth > PositionTrackingParser.MaxDepth)
            {
                throw Error(fileName, node.Start,
                    $"nested deeper than {PositionTrackingParser.MaxDepth} levels through aliases (does an alias refer to a node that contains it?)", null);
            }
            switch (node)
            {
                case YamlMappingNode mapping:
                    VisitMapping(mapping, path);
                    break;
                case YamlSequenceNode sequence:
                    VisitSequence(sequence, path);
                    break;
                case YamlScalarNode scalar:
                    Set(path!, IsNull(scalar) ? null : scalar.Value, scalar);
                    break;
                default:
                    throw Error(fileName, node.Start, $"unsupported YAML node {node.NodeType}", null);
            }
            _depth--;
        }

        private void VisitMapping(YamlMappingNode mapping, string? path)
        {
            if (mapping.Children.Count == 0 && path is not null)
            {
                // As the JSON provider does: an empty section still exists, so "ports: {}" can be reported by name.
                Set(path, null, mapping);
                return;
            }
            foreach (var (keyNode, value) in mapping.Children)
            {
                if (keyNode is not YamlScalarNode { Value: { Length: > 0 } key })
                {
                    throw Error(fileName, keyNode.Start, "a key must be a non-empty text", null);
                }
                Visit(value, path is null ? key : $"{path}:{key}");
            }
        }

        private void VisitSequence(YamlSequenceNode sequence, string? path)
        {
            if (sequence.Children.Count == 0)
            {
                Set(path!, null, sequence);
                return;
            }
            for (var i = 0; i < sequence.Children.Count; i++)
            {
                Visit(sequence.Children[i], $"{path}:{i}");
            }
        }

        private void Set(string key, string? value, YamlNode node)
        {
            if (data.Count >= MaxValues)
            {
                throw Error(fileName, node.Start, $"more than {MaxValues} values once aliases are expanded", null);
            }
            // Configuration keys ignore case, so "Hosts" and "hosts" in one mapping would silently overwrite each other.
            if (!data.TryAdd(key, value))
            {
                throw Error(fileName, node.Start, $"duplicate key '{key}' (keys are case-insensitive)", null);
            }
        }
    }

    /// <summary>
    /// Remembers where the last good event ended, for errors YamlDotNet throws without a position, and refuses nesting
    /// beyond <see cref="MaxDepth"/>: the document is loaded and flattened recursively, and a real configuration is
    /// five levels deep.
    /// </summary>
    private sealed class PositionTrackingParser(IParser inner) : IParser
    {
        public const int MaxDepth = 64;

        private int _depth;

        public Mark LastEnd { get; private set; } = Mark.Empty;

        public ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            var moved = inner.MoveNext();
            switch (inner.Current)
            {
                case MappingStart or SequenceStart when ++_depth > MaxDepth:
                    throw new YamlException(inner.Current.Start, inner.Current.End, $"nested deeper than {MaxDepth} levels");
                case MappingEnd or SequenceEnd:
                    _depth--;
                    break;
            }
            if (inner.Current is { } current)
            {
                LastEnd = current.End;
            }
            return moved;
        }
    }
}
