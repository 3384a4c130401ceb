using EnvelopeKms.Files;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// Two writers finishing the same destination at the same moment: without -Force exactly one wins and the other
/// gets DestinationExistsException — never both "succeeding" with the second silently replacing the first.
/// </summary>
public class NoReplaceMoveTests
{
    [Fact]
    public async Task RacingRenamesWithoutOverwriteHaveExactlyOneWinner()
    {
        using var dir = new TempDir();
        for (int round = 0; round < 200; round++)
        {
            string destination = dir.File($"out{round}.ekms");
            string tempA = dir.File($".a{round}.ekms-tmp"), tempB = dir.File($".b{round}.ekms-tmp");
            await File.WriteAllTextAsync(tempA, "A");
            await File.WriteAllTextAsync(tempB, "B");
            using var start = new Barrier(2);
            bool Try(string temp)
            {
                start.SignalAndWait();
                try { EnvelopeFileOperations.Move(temp, destination, overwrite: false); return true; }
                catch (DestinationExistsException) { return false; }
            }
            var a = Task.Run(() => Try(tempA));
            var b = Task.Run(() => Try(tempB));
            bool[] won = await Task.WhenAll(a, b);
            Assert.Equal(1, won.Count(w => w));
            string winner = won[0] ? "A" : "B";
            Assert.Equal(winner, await File.ReadAllTextAsync(destination));
            Assert.False(File.Exists(won[0] ? tempA : tempB)); // the winner's temp name is gone
            File.Delete(tempA); File.Delete(tempB);
        }
    }

    [Fact]
    public async Task OverwriteReplacesAndNoOverwriteRefuses()
    {
        using var dir = new TempDir();
        string destination = dir.File("d");
        await File.WriteAllTextAsync(destination, "old");
        await File.WriteAllTextAsync(dir.File("t1"), "new");
        Assert.Throws<DestinationExistsException>(() => EnvelopeFileOperations.Move(dir.File("t1"), destination, overwrite: false));
        Assert.Equal("old", await File.ReadAllTextAsync(destination));
        EnvelopeFileOperations.Move(dir.File("t1"), destination, overwrite: true);
        Assert.Equal("new", await File.ReadAllTextAsync(destination));
    }
}
